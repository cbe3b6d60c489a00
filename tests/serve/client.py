#!/usr/bin/env python3
"""Helpers for the `sparsa serve` test scripts (tests/serve/*.sh); run with
the venv's python (tests/serve/venv.sh). Our own code: the Vosk project's
clients are run unmodified from ../shared/peers/vosk-server.

  client.py finals TRANSCRIBE.jsonl
      the text of `sparsa transcribe`'s final events, joined by spaces
  client.py check OUTPUT WAV
      checks the printed replies of a Vosk client that sent WAV in 0.2 s
      frames then {"eof" : 1}: every line a JSON object, one reply per
      frame plus the final; prints the text of its results and final joined
  client.py stream URL WAV [--realtime] [--ca PEM] [--token T]
      a test.py-equivalent session with websocket-client (optionally over
      wss:// trusting PEM, with a bearer token, or sending one frame every
      0.2 s); prints each reply as test.py does, and when the server closes
      first, a last line {"close_code": C, "close_reason": R}; a refused
      handshake prints {"handshake_status": HTTP_STATUS}
  client.py wyoming HOST PORT WAV
      transcribes WAV over the Wyoming protocol with the wyoming package's
      own client (describe -> info, then transcribe/audio-*/transcript);
      prints the program name, then the transcript text
"""

import asyncio
import json
import math
import ssl
import sys
import time
import wave


def joined(texts):
    return " ".join(t for t in (t.strip() for t in texts) if t)


def finals(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            if event.get("type") == "final":
                texts.append(event.get("text", ""))
    print(joined(texts))


def reply_text(reply):
    """The text of a result or final reply, None for a partial."""
    if "alternatives" in reply:  # Vosk's N-best form: the best one first
        alts = reply["alternatives"]
        return alts[0].get("text", "") if alts else ""
    if "text" in reply:
        return reply["text"]
    return None


def check(output, wav):
    with wave.open(wav, "rb") as wf:
        frames = math.ceil(wf.getnframes() / int(wf.getframerate() * 0.2))
    replies = []
    with open(output, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                reply = json.loads(line)
            except ValueError:
                sys.exit(f"line {n} is not JSON: {line.strip()[:200]}")
            if not isinstance(reply, dict):
                sys.exit(f"line {n} is not a JSON object: {line.strip()[:200]}")
            replies.append(reply)
    if len(replies) != frames + 1:
        sys.exit(f"{len(replies)} replies for {frames} frames and the eof (want {frames + 1})")
    for n, reply in enumerate(replies[:-1], 1):
        if reply_text(reply) is None and "partial" not in reply:
            sys.exit(f"reply {n} is neither partial nor result: {json.dumps(reply)[:200]}")
    if reply_text(replies[-1]) is None:
        sys.exit(f"the last reply is not a final result: {json.dumps(replies[-1])[:200]}")
    print(joined(t for t in map(reply_text, replies) if t is not None))


def stream(url, wav, realtime=False, ca=None, token=None):
    import websocket  # websocket-client

    sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca} if ca else None
    header = [f"Authorization: Bearer {token}"] if token else None
    try:
        ws = websocket.create_connection(url, sslopt=sslopt, header=header, timeout=60)
    except websocket.WebSocketBadStatusException as err:
        print(json.dumps({"handshake_status": err.status_code}), flush=True)
        return

    def recv():
        """The next text reply; None after printing the server's close."""
        while True:
            opcode, payload = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                return payload.decode()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                reason = payload[2:].decode(errors="replace")
                print(json.dumps({"close_code": code, "close_reason": reason}), flush=True)
                return None

    wf = wave.open(wav, "rb")
    ws.send(json.dumps({"config": {"sample_rate": wf.getframerate()}}))
    step = int(wf.getframerate() * 0.2)
    start = time.monotonic()
    n = 0
    try:
        while data := wf.readframes(step):
            if realtime:
                n += 1
                time.sleep(max(0.0, start + 0.2 * n - time.monotonic()))
            try:
                ws.send_binary(data)
            except (websocket.WebSocketException, OSError):
                pass  # closed by the server: its replies and close follow
            reply = recv()
            if reply is None:
                return
            print(reply, flush=True)
        ws.send('{"eof" : 1}')
        reply = recv()
        if reply is not None:
            print(reply, flush=True)
    except (websocket.WebSocketException, OSError) as err:
        print(json.dumps({"close_code": None, "close_reason": f"connection lost: {err}"}), flush=True)


async def wyoming_transcribe(host, port, wav):
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 30)
            if event is None:
                sys.exit("the server closed before info")
            if Info.is_type(event.type):
                info = Info.from_event(event)
                break
        names = [p.name for p in info.asr]
        if not names:
            sys.exit(f"info lists no ASR program: {event.data}")
        print(names[0])
    async with AsyncTcpClient(host, port) as client:
        with wave.open(wav, "rb") as wf:
            rate, width, channels = wf.getframerate(), wf.getsampwidth(), wf.getnchannels()
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            while data := wf.readframes(int(rate * 0.2)):
                chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=data)
                await client.write_event(chunk.event())
            await client.write_event(AudioStop().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 60)
            if event is None:
                sys.exit("the server closed before the transcript")
            if Transcript.is_type(event.type):
                print(Transcript.from_event(event).text)
                return


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "finals":
        finals(*args)
    elif cmd == "check":
        check(*args)
    elif cmd == "stream":
        opts = {"realtime": False, "ca": None, "token": None}
        pos = []
        it = iter(args)
        for a in it:
            if a == "--realtime":
                opts["realtime"] = True
            elif a in ("--ca", "--token"):
                opts[a[2:]] = next(it)
            else:
                pos.append(a)
        stream(*pos, **opts)
    elif cmd == "wyoming":
        asyncio.run(wyoming_transcribe(args[0], int(args[1]), args[2]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
