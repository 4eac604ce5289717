-- aimesh: response masking on a model's inbound sidecar (non-production stacks).
--
-- Runs in Envoy's HTTP Lua filter (LuaJIT, Lua 5.1 semantics: no %f frontier, no goto-free
-- assumptions). Text and JSON response bodies are buffered and scanned for
--   * payment card numbers: 13-19 digits, contiguous or in 4-4-4-4 / 4-6-5 groups separated by
--     one space or dash, that pass the Luhn check and are not part of a larger number or word
--     (so probabilities such as 0.1234567890123456 stay intact); all but the last four digits
--     become '*' (the length is kept, JSON strings stay valid);
--   * e-mail addresses: replaced by "[email]".
-- Everything else is left byte for byte as it was. Other content types (binary tensors,
-- images) are passed through untouched.
--
-- Bodies larger than the listener's buffer limit are not passed unmasked: Envoy answers 500
-- when a buffered response overflows, so the filter fails closed.

local EMAIL_MASK = "[email]"

local function luhn_ok(digits)
  local sum, double = 0, false
  for i = #digits, 1, -1 do
    local d = string.byte(digits, i) - 48
    if double then
      d = d * 2
      if d > 9 then d = d - 9 end
    end
    sum = sum + d
    double = not double
  end
  return sum % 10 == 0
end

-- True when the match at [s, e] continues a number or word (then it is not a card number).
local function embedded(text, s, e)
  local before = s > 1 and string.sub(text, s - 1, s - 1) or ""
  local after = string.sub(text, e + 1, e + 1)
  if string.find(before, "^[%w%.]") or string.find(after, "^%w") then
    return true
  end
  -- A decimal point followed by a digit continues the number (1234567890123456.5).
  return after == "." and string.find(string.sub(text, e + 2, e + 2), "^%d") ~= nil
end

local function mask_digits(candidate)
  local digits = string.gsub(candidate, "%D", "")
  return string.rep("*", #digits - 4) .. string.sub(digits, -4)
end

-- Replaces every match of `pattern` that is a plausible card number.
local function mask_pattern(text, pattern)
  local out, pos = {}, 1
  while true do
    local s, e = string.find(text, pattern, pos)
    if not s then break end
    local candidate = string.sub(text, s, e)
    local digits = string.gsub(candidate, "%D", "")
    out[#out + 1] = string.sub(text, pos, s - 1)
    if #digits >= 13 and #digits <= 19 and not embedded(text, s, e) and luhn_ok(digits) then
      out[#out + 1] = mask_digits(candidate)
    else
      out[#out + 1] = candidate
    end
    pos = e + 1
  end
  out[#out + 1] = string.sub(text, pos)
  return table.concat(out)
end

local GROUPED = {
  "%d%d%d%d[ %-]%d%d%d%d[ %-]%d%d%d%d[ %-]%d%d%d%d", -- 4-4-4-4 (Visa, Mastercard, ...)
  "%d%d%d%d[ %-]%d%d%d%d%d%d[ %-]%d%d%d%d%d", -- 4-6-5 (American Express)
}

local function mask_cards(text)
  if not string.find(text, "%d%d%d%d") then
    return text
  end
  for _, pattern in ipairs(GROUPED) do
    text = mask_pattern(text, pattern)
  end
  return mask_pattern(text, "%d+")
end

local function mask_emails(text)
  if not string.find(text, "@", 1, true) then
    return text
  end
  return (string.gsub(text, "[%w%._%%%+%-]+@[%w%-]+%.[%w%.%-]+", function(address)
    -- A sentence's full stop is not part of the address: keep it.
    local trailing = string.match(address, "[%.%-]+$") or ""
    local domain = string.sub(address, 1, #address - #trailing)
    if not string.find(domain, "%.%a%a+$") then
      return address
    end
    return EMAIL_MASK .. trailing
  end))
end

-- Pure entry point (also what the tests call): the masked text.
function aimesh_mask(text)
  return mask_emails(mask_cards(text))
end

local function inspectable(content_type)
  local ct = string.lower(content_type or "")
  return string.find(ct, "json", 1, true) ~= nil or string.find(ct, "^text/") ~= nil
end

function envoy_on_request(request_handle)
  -- A compressed response could not be inspected: ask the model for an identity encoding.
  request_handle:headers():remove("accept-encoding")
end

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  if not inspectable(headers:get("content-type")) then
    return
  end
  local encoding = headers:get("content-encoding")
  if encoding ~= nil and string.lower(encoding) ~= "identity" then
    response_handle:logWarn("aimesh masking: compressed response body not inspected")
    return
  end
  local body = response_handle:body()
  if body == nil then
    return
  end
  local size = body:length()
  if size == 0 then
    return
  end
  local text = body:getBytes(0, size)
  local masked = aimesh_mask(text)
  if masked ~= text then
    body:setBytes(masked)
    if headers:get("content-length") ~= nil then
      headers:replace("content-length", tostring(#masked))
    end
  end
end
