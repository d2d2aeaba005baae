"""TeXML documents parsed and checked (no sockets): verbs, line numbers, refused XML, Bin placeholders, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from softphone.errors import ConfigError
from softphone.switch.callcontrol.apps import options_from_dict
from softphone.switch.callcontrol.texml.document import TexmlError, parse
from softphone.switch.callcontrol.texml.fetch import _response, resolve, substitute

IVR = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say voice="female">Welcome</Say>
  <Gather action="/menu" numDigits="1" timeout="3">
    <Say>Press one</Say>
    <Play>tone:440:200</Play>
  </Gather>
  <Dial callerId="+15550001111" timeout="20"><Number>+15557654321</Number><Sip>sip:agent1@example.com</Sip></Dial>
  <Enqueue waitUrl="/wait">support</Enqueue>
  <Record maxLength="10" recordingStatusCallback="/rec"/>
  <Redirect method="GET">/next</Redirect>
  <Pause length="2"/>
  <Reject reason="busy"/>
  <Hangup/>
</Response>
"""


def test_verbs_nouns_text_and_lines() -> None:
    verbs = parse(IVR)
    assert [v.name for v in verbs] == [
        "Say", "Gather", "Dial", "Enqueue", "Record", "Redirect", "Pause", "Reject", "Hangup",
    ]
    say, gather, dial = verbs[0], verbs[1], verbs[2]
    assert say.text == "Welcome" and say.attrs == {"voice": "female"} and say.line == 3
    assert [c.name for c in gather.children] == ["Say", "Play"] and gather.children[1].line == 6
    assert [(n.name, n.text) for n in dial.children] == [("Number", "+15557654321"), ("Sip", "sip:agent1@example.com")]
    assert verbs[3].text == "support" and verbs[3].attr("waitUrl") == "/wait"


@pytest.mark.parametrize(
    ("doc", "line", "words"),
    [
        ("<Response>\n<Say>hi</Say>\n<Sayy>x</Sayy>\n</Response>", 3, "unknown verb <Sayy>"),
        ("<Response>\n\n<Say colour='red'>hi</Say></Response>", 3, "unknown attribute 'colour' on <Say>"),
        ("<Response>\n<Say>hi</Say>\n<Gather><Dial>1</Dial></Gather></Response>", 3, "cannot be nested in <Gather>"),
        ("<Response>\n<Number>+1555</Number></Response>", 2, "belongs inside <Dial>"),
        ("<Response>\n<Say>unclosed\n</Response>", 3, "not XML"),
        ("just some text", 1, "not XML"),
        ("", 1, "not XML"),
        ("<Reply><Say>hi</Say></Reply>", 1, "root element must be <Response>"),
        ("<Response>\n<Pause length='soon'/></Response>", 2, "must be a whole number"),
        ("<Response>\n<Gather input='telepathy'/></Response>", 2, "must be dtmf, speech"),
        ("<Response>\n<Stream url='ws://x'/></Response>", 2, "not supported by this switch"),
        ("<Response>\n<Redirect/></Response>", 2, "needs text"),
        ("<Response>\n<Dial action='/x' method='PUT'>+1555</Dial></Response>", 2, "must be GET or POST"),
    ],
)
def test_bad_documents_name_the_line(doc: str, line: int, words: str) -> None:
    with pytest.raises(TexmlError) as info:
        parse(doc)
    assert info.value.line == line
    assert words in info.value.message
    assert str(info.value).startswith(f"line {line}: ")


@pytest.mark.parametrize(
    "doc",
    [
        '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "aaaa">]>\n<Response><Say>&a;</Say></Response>',
        '<!DOCTYPE Response SYSTEM "file:///etc/passwd"><Response/>',
        '<Response><?php echo 1 ?><Say>x</Say></Response>',
    ],
)
def test_doctype_entities_and_processing_instructions_are_refused(doc: str) -> None:
    with pytest.raises(TexmlError, match="not allowed in TeXML"):
        parse(doc)


def test_a_bin_substitutes_escaped_request_parameters() -> None:
    out = substitute("<Response><Say>Hello {{From}}, {{ Missing }}to {{To}}</Say></Response>",
                     {"From": "<Bob & co>", "To": "+1312"})
    assert out == "<Response><Say>Hello &lt;Bob &amp; co&gt;, to +1312</Say></Response>"
    assert parse(out)[0].text == "Hello <Bob & co>, to +1312"


def test_relative_urls_resolve_against_the_document() -> None:
    assert resolve("http://127.0.0.1:9/app/voice", "/menu") == "http://127.0.0.1:9/menu"
    assert resolve("http://127.0.0.1:9/app/voice", "menu") == "http://127.0.0.1:9/app/menu"
    assert resolve("/srv/bins/a.xml", "b.xml") == "/srv/bins/b.xml"
    assert resolve("/srv/bins/a.xml", "http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"


def test_http_response_parsing_length_and_chunked() -> None:
    assert _response(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdEXTRA") == (200, b"abcd")
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert _response(chunked) == (200, b"abcde")


def _conn(**texml: str) -> dict[str, object]:
    return {"connection": [{"id": "ivr", "password": "x", **texml}]}


def test_config_reads_texml_apps_and_resolves_bins(tmp_path: Path) -> None:
    (tmp_path / "ivr.xml").write_text("<Response/>")
    opts = options_from_dict(
        _conn(texml_voice_url="ivr.xml", texml_voice_method="get",
              texml_status_callback="http://127.0.0.1:9/status", texml_fallback_url="http://localhost:9/fb"),
        path=str(tmp_path / "accounts.toml"),
    )
    app = opts.texml_apps["ivr"]
    assert app.voice_url == str(tmp_path / "ivr.xml") and app.voice_method == "GET"
    assert app.status_callback == "http://127.0.0.1:9/status" and app.fallback_url == "http://localhost:9/fb"
    assert options_from_dict({"connection": [{"id": "plain", "password": "x"}]}).texml_apps == {}


@pytest.mark.parametrize(
    ("texml", "words"),
    [
        ({"texml_voice_url": "http://203.0.113.5/voice"}, "not loopback"),
        ({"texml_voice_url": "missing.xml"}, "no such file"),
        ({"texml_voice_url": "ftp://127.0.0.1/x"}, "http:// URL or a file path"),
        ({"texml_voice_url": "http://127.0.0.1/v", "texml_voice_method": "PUT"}, "GET or POST"),
        ({"texml_status_callback": "http://127.0.0.1/s"}, "need texml_voice_url"),
        ({"texml_voice_url": "http://127.0.0.1/v", "texml_status_callback": "file:///x"}, "texml_status_callback"),
    ],
)
def test_config_errors_are_clear(tmp_path: Path, texml: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        options_from_dict(_conn(**texml), path=str(tmp_path / "accounts.toml"))
    assert "connection ivr" in str(info.value)


def test_a_number_can_have_an_application_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "sales.xml").write_text("<Response/>")
    data = {"connection": [{
        "id": "ivr", "password": "x", "numbers": ["+13125550160", "+1 (312) 555-0161"],
        "texml_voice_url": "http://127.0.0.1:9/voice",
        "texml_number": [{"number": "+13125550161", "texml_voice_url": "sales.xml", "texml_voice_method": "GET"}],
    }]}
    opts = options_from_dict(data, path=str(tmp_path / "accounts.toml"))
    assert set(opts.texml_apps) == {"ivr"} and opts.texml_apps["ivr"].sid == "ivr"
    sales = opts.texml_number_apps["+13125550161"]
    assert sales.voice_url == str(tmp_path / "sales.xml") and sales.voice_method == "GET"
    assert sales.connection_id == "ivr" and sales.sid == "ivr-13125550161" and sales.number == "+13125550161"


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"number": "+19999999999", "texml_voice_url": "http://127.0.0.1/v"}, "one of the connection's numbers"),
        ({"number": "+13125550160"}, "need texml_voice_url"),
        ({"number": "+13125550160", "texml_voice_url": "http://127.0.0.1/v", "texml_application_id": 7},
         "texml_application_id must be a string"),
    ],
)
def test_per_number_application_errors(tmp_path: Path, table: dict[str, object], words: str) -> None:
    data = {"connection": [{"id": "ivr", "password": "x", "numbers": ["+13125550160"], "texml_number": [table]}]}
    with pytest.raises(ConfigError, match=words):
        options_from_dict(data, path=str(tmp_path / "accounts.toml"))


def test_ssml_in_say_is_spoken_text_in_order_with_breaks_as_pauses() -> None:
    (say,) = parse(
        "<Response><Say voice='Polly.Joanna'>Hello <emphasis level='strong'>big</emphasis> world."
        "<break time='500ms'/> Press <say-as interpret-as='digits'>12</say-as>.</Say></Response>"
    )
    assert say.text == "Hello big world., Press 12."
    with pytest.raises(TexmlError, match="cannot be nested in <Say>") as info:
        parse("<Response>\n<Say>hi <Play>x</Play></Say></Response>")
    assert info.value.line == 2
