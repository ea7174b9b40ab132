-- Argo CD health check for casefile.dev/ResponsePolicy
-- (argocd-cm key: resource.customizations.health.casefile.dev_ResponsePolicy).
--
-- A ResponsePolicy is configuration: it is Healthy once it exists, unless the operator reports a
-- problem with it in status (a condition False, reason Disabled excepted), or has not yet observed
-- its latest spec, or reports a condition Unknown. Same sandbox rules as the Investigation check:
-- Lua 5.1, base and table libraries only.

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

local mode = "creates Investigations for matching alerts"
if obj.spec ~= nil and obj.spec.dryRun == true then
  mode = "dry run: matches are recorded, no Investigation is created"
end

local status = obj.status
if status ~= nil then
  local generation = nil
  if obj.metadata ~= nil then
    generation = obj.metadata.generation
  end
  if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "Spec generation " .. text(generation) .. " not yet observed (status is for generation " .. text(status.observedGeneration) .. ")"
    return hs
  end
  if status.conditions ~= nil then
    local failed = {}
    local running = {}
    for _, c in ipairs(status.conditions) do
      if c.status == "False" and c.reason ~= "Disabled" then
        table.insert(failed, describe(c))
      elseif c.status == "Unknown" then
        table.insert(running, describe(c))
      end
    end
    if #failed > 0 then
      hs.status = "Degraded"
      hs.message = table.concat(failed, "; ")
      return hs
    end
    if #running > 0 then
      hs.status = "Progressing"
      hs.message = table.concat(running, "; ")
      return hs
    end
  end
end

hs.status = "Healthy"
hs.message = "ResponsePolicy " .. mode
return hs
