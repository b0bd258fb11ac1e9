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
