-- The peer a user would pick instead of trace-inject: an Envoy Lua filter that starts a trace on
-- every request. It does the same header work as trace-inject does for a request that arrives with
-- no context (a 128-bit trace id and a span id; x-b3-traceid/spanid/sampled and traceparent set,
-- x-b3-parentspanid/flags removed; x-trace-id on the response), and none of the parsing,
-- validation or repair: a lower bound on what a Lua version of the whole filter would cost.
local random, format = math.random, string.format
math.randomseed(os.time())

local function u32()
  return random(0, 4294967295)
end

function envoy_on_request(request_handle)
  local trace_id = format("%08x%08x%08x%08x", u32(), u32(), u32(), u32())
  local span_id = format("%08x%08x", u32(), u32())
  local headers = request_handle:headers()
  headers:replace("x-b3-traceid", trace_id)
  headers:replace("x-b3-spanid", span_id)
  headers:remove("x-b3-parentspanid")
  headers:replace("x-b3-sampled", "1")
  headers:remove("x-b3-flags")
  headers:replace("traceparent", "00-" .. trace_id .. "-" .. span_id .. "-01")
  -- The response phase runs in another coroutine: the id travels in the stream's metadata.
  request_handle:streamInfo():dynamicMetadata():set("trace_inject", "trace_id", trace_id)
end

function envoy_on_response(response_handle)
  local meta = response_handle:streamInfo():dynamicMetadata():get("trace_inject")
  if meta ~= nil and meta.trace_id ~= nil then
    response_handle:headers():replace("x-trace-id", meta.trace_id)
  end
end
