-- The pre-signed request set both wrk scripts send (wrk-cards.lua, wrk-paced.lua), loaded with
-- require: a file with one request per line, "<hex signature>\t<JSON body>", each formatted once
-- into the string wrk sends.
local M = {}

-- The requests of `path` for workspace `workspace_id`, as an array of prepared strings.
function M.load(path, workspace_id)
  local requests = {}
  local file = assert(io.open(path, "rb"))
  for line in file:lines() do
    local signature, body = line:match("^(%x+)\t(.+)$")
    if signature then
      requests[#requests + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Plain-Workspace-Id"] = workspace_id,
        ["Plain-Request-Signature"] = signature,
      }, body)
    end
  end
  file:close()
  assert(#requests > 0, "no requests in " .. path)
  return requests
end

return M
