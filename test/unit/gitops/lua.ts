// Runs an Argo CD health-check script the way Argo CD does: a fresh VM per evaluation, the live
// object as the global `obj`, and only the libraries Argo CD's sandbox opens by default (package,
// base, table; its "safe os" is left out, these scripts do not use it). No string library: a
// script that calls string.* or a string method fails here as it would in Argo CD.
// fengari is Lua 5.3, Argo CD's gopher-lua is 5.1; the scripts keep to the common subset, and
// JSON integers are pushed as Lua integers so that `..` prints 2, not 2.0, as gopher-lua does.
import fengari, { type LuaState } from 'fengari';

const { lua, lauxlib, lualib, to_luastring } = fengari;

export interface HealthStatus {
  status: string | undefined;
  message: string | undefined;
}

function push(L: LuaState, value: unknown): void {
  if (value === null || value === undefined) lua.lua_pushnil(L);
  else if (typeof value === 'boolean') lua.lua_pushboolean(L, value);
  else if (typeof value === 'number') {
    if (Number.isInteger(value)) lua.lua_pushinteger(L, value);
    else lua.lua_pushnumber(L, value);
  } else if (typeof value === 'string') lua.lua_pushstring(L, to_luastring(value));
  else if (Array.isArray(value)) {
    lua.lua_createtable(L, value.length, 0);
    value.forEach((item, i) => {
      push(L, item);
      lua.lua_rawseti(L, -2, i + 1);
    });
  } else if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    lua.lua_createtable(L, 0, entries.length);
    for (const [k, v] of entries) {
      push(L, v);
      lua.lua_setfield(L, -2, to_luastring(k));
    }
  } else throw new Error(`cannot pass a ${typeof value} to Lua`);
}

function stringField(L: LuaState, name: string): string | undefined {
  const type = lua.lua_getfield(L, -1, to_luastring(name));
  const value = type === lua.LUA_TSTRING ? lua.lua_tojsstring(L, -1) : undefined;
  lua.lua_pop(L, 1);
  return value;
}

/** Evaluates a health script against `obj`; throws with Lua's message if the script errors. */
export function runHealthScript(script: string, obj: unknown): HealthStatus {
  const L = lauxlib.luaL_newstate();
  const libs: [string, (L: LuaState) => number][] = [
    [lualib.LUA_LOADLIBNAME, lualib.luaopen_package],
    ['_G', lualib.luaopen_base],
    [lualib.LUA_TABLIBNAME, lualib.luaopen_table],
  ];
  for (const [name, open] of libs) {
    lauxlib.luaL_requiref(L, to_luastring(name), open, 1);
    lua.lua_pop(L, 1);
  }
  push(L, obj);
  lua.lua_setglobal(L, to_luastring('obj'));
  if (lauxlib.luaL_loadstring(L, to_luastring(script)) !== lua.LUA_OK) {
    throw new Error(`health script does not compile: ${lua.lua_tojsstring(L, -1)}`);
  }
  if (lua.lua_pcall(L, 0, 1, 0) !== lua.LUA_OK) {
    throw new Error(`health script failed: ${lua.lua_tojsstring(L, -1)}`);
  }
  if (lua.lua_type(L, -1) !== lua.LUA_TTABLE) throw new Error('health script did not return a table');
  return { status: stringField(L, 'status'), message: stringField(L, 'message') };
}
