"""TeXML documents: parsed safely into verbs, checked against the verbs this switch knows.

A document is ``<Response>`` holding verbs (``<Say>``, ``<Gather>``, ``<Dial>``...), some with
nested nouns (``<Dial><Number>``) or nested verbs (``<Gather><Say>``). Parsing uses expat
(the parser under :mod:`xml.etree`) directly, so every element keeps its line number for
error messages, and refuses what defusedxml refuses: a DOCTYPE, entity declarations (the
"billion laughs" and external-entity attacks need them) and processing instructions other
than the XML declaration.

:func:`parse` raises :class:`TexmlError` (with ``line``) for text that is not XML, a root
that is not ``<Response>``, an unknown verb or noun, an attribute the verb does not have, or
a verb nested where it cannot be. Attribute names are case-sensitive, as Telnyx's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

MAX_DOCUMENT_BYTES = 256 * 1024
"""Largest document accepted (Telnyx's limit is lower; this only bounds memory)."""


class TexmlError(ValueError):
    """A document the switch cannot run; ``line`` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(eq=False)
class Verb:
    """One element: a verb or a noun."""

    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: list[Verb] = field(default_factory=list)
    line: int = 0

    def attr(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default).strip() or default


_STATUS_CALLBACK = ("statusCallback", "statusCallbackEvent", "statusCallbackMethod")
_RECORDING_CALLBACK = (
    "recordingStatusCallback",
    "recordingStatusCallbackMethod",
    "recordingStatusCallbackEvent",
)

VERBS: dict[str, frozenset[str]] = {
    # Attributes are the ones Telnyx documents for each verb; those the switch does not act on
    # are accepted and ignored (the README's TeXML table says which).
    "Say": frozenset({"voice", "language", "loop"}),
    "Play": frozenset({"loop", "digits"}),
    "Pause": frozenset({"length"}),
    "Gather": frozenset(
        {
            "action", "method", "timeout", "finishOnKey", "numDigits", "minDigits", "maxDigits", "validDigits",
            "input", "speechTimeout", "language", "hints", "profanityFilter", "partialResultCallback",
            "partialResultCallbackMethod", "actionOnEmptyResult", "transcriptionEngine", "useEnhanced",
            "speechModel", "apiKeyRef", "region",
        }
    ),
    "Dial": frozenset(
        {
            "action", "method", "callerId", "timeout", "record", "hangupOnStar", "timeLimit", "ringTone",
            "answerOnBridge", "sendRecordingUrl", "recordingTrack", "recordingChannels", "trim",
            "recordingTimeout", "fromDisplayName", "sipTransferUrl",
            *_RECORDING_CALLBACK, *_STATUS_CALLBACK,
        }
    ),
    "Enqueue": frozenset({"action", "method", "waitUrl", "waitUrlMethod", "maxQueueSize", "maxWaitTimeSecs"}),
    "Leave": frozenset(),
    "Record": frozenset(
        {
            "action", "method", "timeout", "finishOnKey", "maxLength", "playBeep", "trim", "channels",
            "fileFormat", "transcribe", "transcribeCallback", "transcriptionEngine", *_RECORDING_CALLBACK,
        }
    ),
    "Redirect": frozenset({"method"}),
    "Reject": frozenset({"reason"}),
    "Hangup": frozenset(),
}
"""Verbs the switch runs, and the attributes each takes."""

NOUNS: dict[str, frozenset[str]] = {
    "Number": frozenset({"sendDigits", "url", "method", *_STATUS_CALLBACK}),
    "Sip": frozenset({"username", "password", "url", "method", *_STATUS_CALLBACK}),
    "Client": frozenset({"url", "method", *_STATUS_CALLBACK}),
    "Queue": frozenset({"url", "method"}),
    "Conference": frozenset(
        {
            "startConferenceOnEnter", "endConferenceOnExit", "beep", "muted", "maxParticipants", "record",
            "trim", "waitUrl", "waitMethod", "coach", "hold", "holdAudioUrl", "supervisorRole",
            "callSidToCoach", *_RECORDING_CALLBACK, *_STATUS_CALLBACK,
        }
    ),
}
"""What ``<Dial>`` may hold (bare text is a number or a SIP username)."""

NESTED: dict[str, frozenset[str]] = {
    "Gather": frozenset({"Say", "Play", "Pause"}),
    "Dial": frozenset(NOUNS),
}
"""Elements that may sit inside a verb; every other verb holds text only."""

KNOWN_ELSEWHERE = frozenset(
    {"Stream", "Start", "Stop", "Connect", "Refer", "Transcription", "Siprec", "Suppression", "Sms", "Message",
     "AI", "AIAssistant", "Room"}
)
"""Real TeXML verbs this switch does not implement (refused with a message saying so)."""


def parse(text: str | bytes) -> list[Verb]:
    """The verbs of a document (see the module docstring); raises :class:`TexmlError`."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > MAX_DOCUMENT_BYTES:
        raise TexmlError(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    if not data.strip():
        raise TexmlError("empty document (not XML)", 1)
    root = _tree(data)
    if root.name != "Response":
        raise TexmlError(f"the root element must be <Response>, not <{root.name}>", root.line)
    if root.attrs:
        raise TexmlError(f"unknown attribute {next(iter(root.attrs))!r} on <Response>", root.line)
    for verb in root.children:
        _check(verb, parent=None)
    return root.children


def _tree(data: bytes) -> Verb:
    parser = expat.ParserCreate()
    stack: list[Verb] = []
    done: list[Verb] = []

    def refuse(what: str) -> None:
        raise TexmlError(f"{what} not allowed in TeXML", parser.CurrentLineNumber)

    says: list[Verb] = []  # the <Say> being read: SSML inside it adds to its text, in document order

    def start(name: str, attrs: dict[str, str]) -> None:
        node = Verb(name, dict(attrs), line=parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(node)
        if says and name == "break":
            says[-1].text += ", "  # a pause flite makes at a comma
        stack.append(node)
        if name == "Say" and not says:
            says.append(node)

    def end(name: str) -> None:
        node = stack.pop()
        if says and says[-1] is node:
            says.pop()
            node.text = " ".join(node.text.split())
        node.text = node.text.strip()
        if not stack:
            done.append(node)

    def chars(content: str) -> None:
        if says:
            says[-1].text += content
        elif stack:
            stack[-1].text += content

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = lambda *a: refuse("a DOCTYPE is")
    parser.EntityDeclHandler = lambda *a: refuse("entity declarations are")
    parser.UnparsedEntityDeclHandler = lambda *a: refuse("entity declarations are")
    parser.ExternalEntityRefHandler = lambda *a: refuse("external entities are")  # type: ignore[assignment]
    parser.ProcessingInstructionHandler = lambda *a: refuse("processing instructions are")
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise TexmlError(f"not XML: {expat.errors.messages[exc.code]}", exc.lineno) from None
    if not done:
        raise TexmlError("no root element (not XML)", 1)
    return done[0]


def _check(node: Verb, parent: Verb | None) -> None:
    if parent is None:
        allowed = VERBS.get(node.name)
        if allowed is None:
            if node.name in NOUNS:
                raise TexmlError(f"<{node.name}> belongs inside <Dial>", node.line)
            if node.name in KNOWN_ELSEWHERE:
                raise TexmlError(f"the verb <{node.name}> is not supported by this switch", node.line)
            raise TexmlError(f"unknown verb <{node.name}>", node.line)
    else:
        nested = NESTED.get(parent.name, frozenset())
        if node.name not in nested:
            raise TexmlError(f"<{node.name}> cannot be nested in <{parent.name}>", node.line)
        allowed = NOUNS[node.name] if parent.name == "Dial" else VERBS[node.name]
    for attr in node.attrs:
        if attr not in allowed:
            raise TexmlError(f"unknown attribute {attr!r} on <{node.name}>", node.line)
    if node.name == "Say":
        _check_ssml(node)
        _check_values(node)
        return
    if node.children and node.name not in NESTED:
        raise TexmlError(f"<{node.name}> cannot hold <{node.children[0].name}>", node.children[0].line)
    for child in node.children:
        _check(child, node)
    _check_values(node)


SSML_TAGS = frozenset(
    {"speak", "break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w", "mark",
     "amazon:domain", "amazon:effect", "amazon:auto-breaths"}
)
"""SSML a ``<Say>`` may hold: its text is spoken, a ``<break>`` is a short pause; the rest of SSML
(prosody, phonemes...) is not rendered by the offline engines."""


def _check_ssml(node: Verb) -> None:
    for child in node.children:
        if child.name not in SSML_TAGS:
            raise TexmlError(f"<{child.name}> cannot be nested in <Say> (SSML tags only)", child.line)
        _check_ssml(child)


_NUMERIC = {
    "Pause": ("length",),
    "Gather": ("timeout", "numDigits", "minDigits", "maxDigits", "speechTimeout"),
    "Dial": ("timeout", "timeLimit"),
    "Record": ("timeout", "maxLength"),
    "Say": ("loop",),
    "Play": ("loop",),
}


def _check_values(node: Verb) -> None:
    for attr in _NUMERIC.get(node.name, ()):
        raw = node.attrs.get(attr)
        if raw is None or (node.name == "Gather" and attr == "speechTimeout" and raw.strip() == "auto"):
            continue
        if not raw.strip().isdigit():
            raise TexmlError(f"{attr}={raw!r} on <{node.name}> must be a whole number", node.line)
    for attr in ("method", "waitUrlMethod", "waitMethod", "recordingStatusCallbackMethod", "statusCallbackMethod"):
        raw = node.attrs.get(attr)
        if raw is not None and raw.strip().upper() not in ("GET", "POST"):
            raise TexmlError(f"{attr}={raw!r} on <{node.name}> must be GET or POST", node.line)
    if node.name == "Gather":
        kinds = node.attr("input", "dtmf").split()
        if not kinds or any(k not in ("dtmf", "speech") for k in kinds):
            raise TexmlError(f"input={node.attrs.get('input')!r} on <Gather> must be dtmf, speech or 'dtmf speech'",
                             node.line)
    if node.name == "Reject" and node.attr("reason", "rejected") not in ("rejected", "busy"):
        raise TexmlError(f"reason={node.attrs.get('reason')!r} on <Reject> must be rejected or busy", node.line)
    if node.name == "Play" and not node.text and not node.attrs.get("digits"):
        raise TexmlError("<Play> needs a URL (or digits)", node.line)
    if node.name in ("Redirect", "Enqueue") and not node.text:
        raise TexmlError(f"<{node.name}> needs text (a URL or a name)", node.line)
    if node.name == "Dial" and not node.text and not node.children:
        raise TexmlError("<Dial> needs a number, a SIP URI or a noun", node.line)
