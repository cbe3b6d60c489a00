"""A Wyoming client built from the `wyoming` package's own classes, run by
tests/serve/wyoming.sh against `sparsa serve --wyoming`.

Usage: wyoming_client.py URI WAV TEXT [WAV TEXT ...]

URI is tcp://HOST:PORT or unix://PATH; each WAV (16-bit PCM) is sent in
1024-sample chunks and its transcript must equal TEXT. Checks, exiting 1 on the first failure:
- describe -> info: one ASR program "sparsa" with transcript streaming and
  one installed English model;
- on one connection, every WAV in turn (several audio rounds): the events
  after audio-stop are transcript-start, transcript-chunk..., transcript,
  transcript-stop, the chunks concatenate to the transcript, and the
  transcript is the expected text;
- a fresh connection per WAV, as Home Assistant's client does (transcribe,
  audio, then read up to transcript), gives the same text.
"""

import asyncio
import sys
import wave

from wyoming.asr import (
    Transcribe,
    Transcript,
    TranscriptChunk,
    TranscriptStart,
    TranscriptStop,
)
from wyoming.audio import AudioStop, wav_to_chunks
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import Describe, Info

TIMEOUT = 60.0
SAMPLES_PER_CHUNK = 1024


def fail(msg: str) -> None:
    print(f"wyoming_client: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def client(uri: str) -> AsyncClient:
    return AsyncClient.from_uri(uri, connect_timeout=10.0, read_timeout=TIMEOUT)


async def send_wav(c: AsyncClient, path: str) -> None:
    await c.write_event(Transcribe(language="en").event())
    with wave.open(path, "rb") as wav:
        for ev in wav_to_chunks(wav, SAMPLES_PER_CHUNK, start_event=True):
            await c.write_event(ev.event())
    await c.write_event(AudioStop().event())


async def read_round(c: AsyncClient) -> tuple[str, list[str]]:
    """Reads one round's events: (transcript text, chunk texts)."""
    kinds = []
    chunks = []
    text = None
    while True:
        ev = await c.read_event()
        if ev is None:
            fail(f"connection closed after {kinds}")
        if Error.is_type(ev.type):
            fail(f"error event: {Error.from_event(ev)}")
        kinds.append(ev.type)
        if TranscriptStart.is_type(ev.type):
            if len(kinds) != 1:
                fail(f"transcript-start not first: {kinds}")
        elif TranscriptChunk.is_type(ev.type):
            if text is not None:
                fail(f"transcript-chunk after transcript: {kinds}")
            chunks.append(TranscriptChunk.from_event(ev).text)
        elif Transcript.is_type(ev.type):
            text = Transcript.from_event(ev).text
        elif TranscriptStop.is_type(ev.type):
            break
        else:
            fail(f"unexpected event {ev.type}")
    if kinds[0] != "transcript-start" or text is None or kinds[-2] != "transcript":
        fail(f"events out of order: {kinds}")
    if "".join(chunks) != text:
        fail(f"chunks {chunks!r} do not make the transcript {text!r}")
    return text, chunks


async def main(uri: str, pairs: list[tuple[str, str]]) -> None:
    async with client(uri) as c:
        await c.write_event(Describe().event())
        ev = await c.read_event()
        if ev is None or not Info.is_type(ev.type):
            fail(f"describe got {ev}")
        info = Info.from_event(ev)
        if len(info.asr) != 1:
            fail(f"expected one ASR program: {info.asr}")
        asr = info.asr[0]
        if asr.name != "sparsa" or not asr.version or not asr.supports_transcript_streaming:
            fail(f"ASR program: {asr}")
        if len(asr.models) != 1:
            fail(f"expected one model: {asr.models}")
        model = asr.models[0]
        if not model.installed or model.languages != ["en"] or not model.name:
            fail(f"model: {model}")
        print(f"info: {asr.name} {asr.version}, model {model.name}")

        # Every clip on this one connection.
        for wav, expected in pairs:
            await send_wav(c, wav)
            text, chunks = await read_round(c)
            if text != expected:
                fail(f"{wav}: transcript {text!r}, transcribe said {expected!r}")
            print(f"{wav}: {len(chunks)} chunk(s): {text}")

    # A connection per clip, reading only up to the transcript (Home
    # Assistant's wyoming stt client).
    for wav, expected in pairs:
        async with client(uri) as c:
            await send_wav(c, wav)
            while True:
                ev = await c.read_event()
                if ev is None:
                    fail(f"{wav}: connection closed before the transcript")
                if Transcript.is_type(ev.type):
                    text = Transcript.from_event(ev).text
                    break
            if text != expected:
                fail(f"{wav} (own connection): {text!r} != {expected!r}")
    print(f"ok: {uri}: {len(pairs)} clip(s)")


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 3 or len(args) % 2 != 1:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    uri = args[0]
    asyncio.run(main(uri, list(zip(args[1::2], args[2::2]))))
