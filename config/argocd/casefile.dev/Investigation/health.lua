-- Argo CD health check for casefile.dev/Investigation
-- (argocd-cm key: resource.customizations.health.casefile.dev_Investigation).
--
-- Reads only what the casefile operator writes: status.observedGeneration, status.phase and the
-- metav1.Condition list (True = done, False = failed or refused, Unknown = under way; a phase the
-- spec turns off is True with reason Disabled). Written for Argo CD's default sandbox (gopher-lua,
-- Lua 5.1, base and table libraries only: no string library), so it uses only `..`, ipairs and
-- comparisons. `obj` is the live object; the script returns a table with status and message.
--
--   Progressing  being deleted (the finalizer lifts containment first), no status yet, a spec
--                generation not yet observed, a condition Unknown, or Ready not yet set
--   Degraded     a condition False (reason Disabled never counts): names condition, reason, message
--   Healthy      Ready=True; the message starts with status.phase (Contained, Completed, Released)
--
-- Released is Healthy: the case was closed as asked (spec.release: true), containment is lifted
-- and the evidence is kept; the Investigation stays as the record of the incident.

local hs = {}

local function text(v)
  if v == nil then
    return ""
  end
  return tostring(v)
end

local function describe(c)
  local s = text(c.type) .. "=" .. text(c.status)
  if c.reason ~= nil and c.reason ~= "" then
    s = s .. " (" .. text(c.reason) .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    s = s .. ": " .. text(c.message)
  end
  return s
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted: casefile lifts containment before it removes its finalizer; the case file stays on the evidence volume"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the casefile operator to pick up the Investigation"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local observed = status.observedGeneration

if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Spec generation " .. text(generation) .. " not yet observed (status is for generation " .. text(observed) .. ")"
  return hs
end

-- Failures. Before the first full pass (no observedGeneration yet) only conditions written for the
-- current generation count; once the generation is observed, every False condition stands.
local failed = {}
local readyFailed = nil
for _, c in ipairs(status.conditions) do
  if c.status == "False" and c.reason ~= "Disabled" then
    local current = observed ~= nil or c.observedGeneration == nil or generation == nil or c.observedGeneration == generation
    if current then
      if c.type == "Ready" then
        readyFailed = c
      else
        table.insert(failed, describe(c))
      end
    end
  end
end
if #failed == 0 and readyFailed ~= nil then
  -- Ready alone is False (for example InvalidSpec): it carries the reason.
  table.insert(failed, describe(readyFailed))
end
if #failed > 0 then
  hs.status = "Degraded"
  hs.message = table.concat(failed, "; ")
  return hs
end

local ready = nil
local running = {}
for _, c in ipairs(status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.status == "Unknown" then
    table.insert(running, describe(c))
  end
end

local phase = text(status.phase)
if phase == "" then
  phase = "Pending"
end

if #running > 0 then
  hs.status = "Progressing"
  hs.message = phase .. ": " .. table.concat(running, "; ")
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = phase .. ": phases are running; Ready is not set yet"
  return hs
end

if ready.status == "True" then
  if observed == nil then
    hs.status = "Progressing"
    hs.message = phase .. ": Ready is set but status.observedGeneration is not"
    return hs
  end
  hs.status = "Healthy"
  if phase == "Released" then
    hs.message = "Released: containment lifted as the spec asked; the case is closed and its evidence kept. " .. text(ready.message)
  else
    hs.message = phase .. ": " .. text(ready.message)
  end
  return hs
end

hs.status = "Progressing"
hs.message = phase .. ": " .. describe(ready)
return hs
