"""Client units: URL policy, backoff, log redaction, handler isolation, audio fallback note."""

from __future__ import annotations

import logging

import pytest

from softphone.client.client import Client, ClientEvent, backoff_delay
from softphone.client.connection import frame_for_log
from softphone.client.events import SocketError, SocketOpen
from softphone.errors import ConfigError, MediaError
from softphone.media import hub as audio_mod
from softphone.media.hub import AudioConfig, AudioManager
from softphone.protocol import Credentials

CREDS = Credentials(login="demo", password="s3cret-password")


def test_ws_only_to_loopback_unless_insecure() -> None:
    Client("ws://127.0.0.1:1", CREDS)
    Client("ws://localhost:1", CREDS)
    with pytest.raises(ConfigError, match="insecure"):
        Client("ws://example.com", CREDS)
    Client("ws://example.com", CREDS, insecure=True)
    with pytest.raises(ConfigError):
        Client("http://example.com", CREDS)


def test_ice_servers_by_host() -> None:
    assert Client("ws://127.0.0.1:1", CREDS).ice_servers == []
    telnyx = Client("wss://rtc.telnyx.com", CREDS).ice_servers
    assert telnyx[0]["urls"] == ["stun:stun.telnyx.com:3478"]
    assert Client("wss://rtc.telnyx.com", CREDS, ice_servers=[]).ice_servers == []


def test_backoff_doubles_caps_and_jitters() -> None:
    assert backoff_delay(1, lambda: 0.5) == 1.0
    assert backoff_delay(3, lambda: 0.5) == 4.0
    assert backoff_delay(10, lambda: 0.5) == 30.0
    assert backoff_delay(1, lambda: 0.0) == 0.75
    assert backoff_delay(10, lambda: 1.0) == 37.5


def test_login_frames_never_logged() -> None:
    frame = '{"jsonrpc":"2.0","id":"1","method":"login","params":{"login":"demo","passwd":"s3cret-password"}}'
    assert "s3cret" not in frame_for_log(frame)
    assert "s3cret" not in repr(CREDS)


def test_handler_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    client = Client("ws://127.0.0.1:1", CREDS)
    seen: list[ClientEvent] = []

    def bad(event: ClientEvent) -> None:
        raise RuntimeError("boom")

    client.on("socket.error", bad)
    client.on("*", seen.append)
    with caplog.at_level(logging.ERROR, logger="softphone.client.client"):
        client.emit(SocketError(message="m"))
    assert seen and seen[0].name == "socket.error" and seen[0].data == {"message": "m"} and "boom" in caplog.text
    client.off("socket.error")
    client.emit(SocketOpen())
    assert len(seen) == 2


def test_auto_backend_falls_back_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_mod, "probe_pyaudio", lambda: "no audio input device exists")
    manager = AudioManager(AudioConfig())
    assert manager.resolve() == "tone"
    assert "no audio input device exists" in manager.note and "440 Hz" in manager.note


def test_audio_config_validation() -> None:
    with pytest.raises(MediaError):
        AudioConfig(backend="alsa")
    with pytest.raises(MediaError):
        AudioConfig(backend="file")
