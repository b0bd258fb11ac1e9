#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus/<target>/ from tests/fixtures/ plus hostile inputs.
# Each input starts with the selector byte its target reads (see the comment atop each target).
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures

seed() { # seed <target> <name> <selector byte, hex> <file with the body | -: stdin>
    local dir="corpus/$1"
    mkdir -p "$dir"
    { printf "\\x$3"; cat "${4:--}"; } >"$dir/$2"
}

rm -rf corpus
BILLION='<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><postStatus><status>&lol2;</status></postStatus>'
XXE='<?xml version="1.0"?><!DOCTYPE postStatus [<!ENTITY x SYSTEM "file:///etc/passwd">]><postStatus><status>&x;</status></postStatus>'
REFS='<postStatus><status>a &amp; b &lt;&gt;&quot;&apos; &#x41;&#66;&#0;&#xD800;&#x10FFFF;&#x110000; &undefined;</status><![CDATA[<x>&amp;]]><!-- c --><?pi x?></postStatus>'
DEEP_XML="<postStatus>$(printf '<a>%.0s' $(seq 40))$(printf '</a>%.0s' $(seq 40))</postStatus>"
ATTRS="<postStatus$(for i in $(seq 300); do printf ' a%d="%d"' "$i" "$i"; done)><status>x</status></postStatus>"
NAMESPACES="<postStatus$(for i in $(seq 100); do printf ' xmlns:p%d="urn:%d"' "$i" "$i"; done)><p7:status xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:nil=\"true\"/><q:x/></postStatus>"
LISTS='<jsonObject><media_ids><jsonElement>1</jsonElement><jsonElement>2</jsonElement></media_ids><poll><options>a</options><options>b</options></poll><µ>x</µ><ª²>y</ª²></jsonObject>'
ENVELOPE_DTD='<!DOCTYPE e [<!ENTITY x "y">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><init>&x;</init></soapenv:Body></soapenv:Envelope>'
MUST='<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header><s:Security xmlns:s="urn:s" env:mustUnderstand="true"/></env:Header><env:Body><init/></env:Body></env:Envelope>'
HEADERS="<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Header>$(for i in $(seq 50); do printf '<h:T%d xmlns:h="urn:h">%d</h:T%d>' "$i" "$i" "$i"; done)</soapenv:Header><soapenv:Body><init><connection>main</connection></init></soapenv:Body></soapenv:Envelope>"
WRONG_NS='<soapenv:Envelope xmlns:soapenv="urn:not-soap"><soapenv:Body><init/></soapenv:Body></soapenv:Envelope>'
DEEP_JSON="$(printf '[%.0s' $(seq 200))$(printf ']%.0s' $(seq 200))"
VALUE_JSON="{\"a\":$(printf '{"b":%.0s' $(seq 60))1$(printf '}%.0s' $(seq 60)),\"µ\":1,\"ª\":2,\"2fa\":3,\"\":4,\"x y\":[[1,[2]],{}],\"f\":1.5e300,\"n\":-0,\"big\":18446744073709551616,\"s\":\"\\u0000\\u0001\\ud83d\\ude00<&>\"}"

# decode_json: low nibble the path's operation (5 = postStatus), high nibble the Accept header.
seed decode_json fixture_mi_post_status 05 "$fixtures/mi_post_status.json"
seed decode_json fixture_mi_post_status_accept_xml 25 "$fixtures/mi_post_status.json"
printf '%s' "$DEEP_JSON" | seed decode_json deep_array 00
printf '%s' "$VALUE_JSON" | seed decode_json odd_values_accept_xml 20
printf '{"connection":"ma\\u0000in","status":"\xff\xfe"}' | seed decode_json nul_and_invalid_utf8 05
printf '{"connection":"main" ' | seed decode_json truncated 00
printf ' \r\n\t' | seed decode_json blank 0a
printf '{"status":"a","poll":{"options":["x","x"],"expires_in":1,"expires_in":2}}' | seed decode_json duplicate_nested_key 05

# decode_xml: low nibble the operation, bits 4-6 Accept, bit 7 text/xml.
seed decode_xml fixture_pox_post_status 05 "$fixtures/pox_post_status.xml"
seed decode_xml fixture_jsonobject_post_status 15 "$fixtures/jsonobject_post_status.xml"
seed decode_xml fixture_soap11_on_rest_path 85 "$fixtures/soap11_post_status.xml"
seed decode_xml fixture_soap12_on_rest_path 05 "$fixtures/soap12_post_status.xml"
printf '%s' "$BILLION" | seed decode_xml billion_laughs 05
printf '%s' "$XXE" | seed decode_xml external_entity 05
printf '%s' "$REFS" | seed decode_xml references 05
printf '%s' "$DEEP_XML" | seed decode_xml deep 05
printf '%s' "$ATTRS" | seed decode_xml attributes 05
printf '%s' "$NAMESPACES" | seed decode_xml namespaces 05
printf '%s' "$LISTS" | seed decode_xml lists_and_odd_names_accept_json 15

# decode_soap: bits 0-1 the Content-Type (0 SOAP 1.1, 1 SOAP 1.2), bits 2-3 the action (1: the
# operation in bits 4-7, 5 = postStatus; 3: a length byte and that text), the rest the envelope.
seed decode_soap fixture_soap11_post_status 54 "$fixtures/soap11_post_status.xml"
seed decode_soap fixture_soap12_post_status 55 "$fixtures/soap12_post_status.xml"
seed decode_soap fixture_soap12_no_action 01 "$fixtures/soap12_post_status.xml"
{ printf '\x1curn:mastodon-sidecar:v1#init'; printf '%s' "$HEADERS"; } | seed decode_soap headers_with_action_text 0c
printf '%s' "$ENVELOPE_DTD" | seed decode_soap dtd 00
printf '%s' "$MUST" | seed decode_soap must_understand 01
printf '%s' "$WRONG_NS" | seed decode_soap wrong_namespace 00
printf '%s' "$BILLION" | seed decode_soap billion_laughs 00

# encode_roundtrip: bits 0-1 the decoder (JSON, XML, SOAP 1.1, SOAP 1.2), bits 2-4 the operation
# (5 = postStatus), bits 5-7 with them the error kind; bit 7 adds Mastodon's error text.
seed encode_roundtrip fixture_json 14 "$fixtures/mi_post_status.json"
seed encode_roundtrip fixture_pox 15 "$fixtures/pox_post_status.xml"
seed encode_roundtrip fixture_soap11 16 "$fixtures/soap11_post_status.xml"
seed encode_roundtrip fixture_soap12 17 "$fixtures/soap12_post_status.xml"
printf '%s' "$VALUE_JSON" | seed encode_roundtrip odd_values 94
printf '%s' "$LISTS" | seed encode_roundtrip odd_names 15
printf 'detail with \x01 control, ]]> and \xef\xbf\xbe and </faultstring>' | seed encode_roundtrip odd_detail e0

# classify_answer: byte 0 the route (0 a read, 1 postStatus, 2 createApp, 3 the token route), bytes
# 1-2 the status minus 100 (big-endian), byte 3 the number of headers, each as a name selector (0
# content-type, 1 retry-after, 2-4 x-ratelimit-limit, -remaining, -reset, 5 link, 6 date, 7
# x-request-id), a length byte and the value; then the body. In values and body, $S stands for the
# request's secret as sent, $P percent-encoded, $J JSON-escaped, $U with a \u escape.
answer() { # answer <name> <route> <status> <body file | -> [<header selector> <value>]...
    local name="$1" route="$2" status="$3" body="$4"
    shift 4
    local dir="corpus/classify_answer" v=$((status - 100))
    mkdir -p "$dir"
    {
        printf "\\x$(printf %02x "$route")\\x$(printf %02x $((v >> 8)))\\x$(printf %02x $((v & 255)))\\x$(printf %02x $(($# / 2)))"
        while [ $# -gt 0 ]; do
            printf "\\x$(printf %02x "$1")\\x$(printf %02x "${#2}")"
            printf '%s' "$2"
            shift 2
        done
        cat "$body"
    } >"$dir/$name"
}
JSON=application/json
HTML='text/html; charset=utf-8'
printf '{"id":"1","username":"u","note":"echo $S","fields":[{"name":"$J","value":"$P"}],"$S":1}' | answer account_echoing_the_token 0 200 - 0 "$JSON" 2 300 3 299 4 2030-01-01T00:00:00.000Z
printf '{"access_token":"$S","token_type":"Bearer","scope":"read write","created_at":1,"note":"$S"}' | answer token_answer_keeps_its_token 3 200 - 0 "$JSON"
printf '{"id":"9","client_id":"c","client_secret":"$S","name":"$U"}' | answer app_answer 2 200 - 0 "$JSON"
printf '{"error":"Validation failed: Text $S is too long","details":{"text":[{"error":"ERR_TOO_LONG"}]}}' | answer validation_422 1 422 - 0 "$JSON"
printf '{"error":"Invalid Bearer token $S"}' | answer token_refusal_400 1 400 - 0 "$JSON"
printf '{"error":"This action is outside the authorized scopes","error_description":"$J"}' | answer scope_403 0 403 - 0 "$JSON"
printf '<html><head><style>p{}</style><script>var t="$S"</script></head><body><h1>401</h1><p>token &#102;uzz-secret_T0k3n&#x2F;+=.9Zq &amp; $P &lt;b&gt;</p><!-- $S --></body></html>' | answer html_401 0 401 - 0 "$HTML"
printf 'slow down, $S' | answer rate_limited_retry_after 1 429 - 1 30 2 300 3 0 0 text/plain
printf '' | answer rate_limited_reset_date 0 429 - 2 300 3 0 4 2030-01-01T00:00:00.000Z
printf '' | answer rate_limited_no_time 1 429 /dev/null
printf 'upstream connect error or disconnect/reset before headers. \xff\xfe\x00 $S' | answer gateway_503 1 503 - 0 text/plain
printf '{"error_description":"$U upstream"}' | answer gateway_502_json 2 502 - 0 "$JSON"
printf '[{"id":"1"}]' | answer page_with_link 0 200 - 5 '<https://fuzz.example/api/v1/timelines/home?max_id=1&access_token=$P>; rel="next", <https://fuzz.example/x?$S>; rel="prev"' 0 "$JSON"
printf '<!doctype html><html><body>Welcome to nginx!</body></html>' | answer not_json_200 1 200 - 0 "$HTML"
answer redirect_302 0 302 /dev/null 0 text/html
answer empty_200 3 200 /dev/null
printf '\x00\x01\x02\xff{"error":' | answer garbage_500 1 500 -
printf '{"error":' | answer truncated_json_404 0 404 - 0 "$JSON"
printf '<p>unterminated <b $S' | answer unterminated_tag_418 0 418 - 0 "$HTML"
