// The few parts of fengari (a Lua 5.3 VM in JavaScript, no bundled types) the health-check tests use.
declare module 'fengari' {
  export type LuaState = { readonly __luaState: unique symbol };
  type LuaString = Uint8Array;
  type OpenFunction = (L: LuaState) => number;
  const fengari: {
    to_luastring(s: string): LuaString;
    to_jsstring(s: LuaString): string;
    lua: {
      LUA_OK: number;
      LUA_TTABLE: number;
      LUA_TSTRING: number;
      lua_pushnil(L: LuaState): void;
      lua_pushboolean(L: LuaState, b: boolean): void;
      lua_pushinteger(L: LuaState, n: number): void;
      lua_pushnumber(L: LuaState, n: number): void;
      lua_pushstring(L: LuaState, s: LuaString): void;
      lua_createtable(L: LuaState, narr: number, nrec: number): void;
      lua_rawseti(L: LuaState, index: number, i: number): void;
      lua_setfield(L: LuaState, index: number, k: LuaString): void;
      lua_getfield(L: LuaState, index: number, k: LuaString): number;
      lua_setglobal(L: LuaState, name: LuaString): void;
      lua_pcall(L: LuaState, nargs: number, nresults: number, msgh: number): number;
      lua_type(L: LuaState, index: number): number;
      lua_tojsstring(L: LuaState, index: number): string;
      lua_pop(L: LuaState, n: number): void;
    };
    lauxlib: {
      luaL_newstate(): LuaState;
      luaL_loadstring(L: LuaState, s: LuaString): number;
      luaL_requiref(L: LuaState, name: LuaString, open: OpenFunction, global: number): void;
    };
    lualib: {
      LUA_LOADLIBNAME: string;
      LUA_TABLIBNAME: string;
      luaopen_base: OpenFunction;
      luaopen_package: OpenFunction;
      luaopen_table: OpenFunction;
    };
  };
  export default fengari;
}
