#!/usr/bin/env python3
"""Speech recognition on this machine, the hub's way against the peer it was
converted from, on the same audio: whisper.cpp's server (the hub's: Whisper
base converted to whisper.cpp's format by scripts/whisper-model.sh, two
threads, asked over HTTP as the gateway asks it) against faster-whisper
(CTranslate2, the model's original format from the same wheels, two
threads, float32 on this CPU and int8, greedy as whisper.cpp is here).

Sentences spoken by espeak-ng (English and Korean, ten each) as 16 kHz WAV.
Prints, per engine and language: the real-time factor (seconds of audio
heard per second of recognition, higher is faster), the word error rate
(English) and character error rate (Korean, the measure Korean is given in),
how often the two engines' words agree, the engines' resident memory
(whisper-server's VmHWM; faster-whisper's process peak) and the ratios.

    scripts/bench-speech.sh     # makes the venv and fetches what this needs
"""
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.request
import uuid
from pathlib import Path

ENGLISH = [
    "What is the capital of France?",
    "Remind me to call grandma tomorrow at six.",
    "Add milk and eggs to the shopping list.",
    "What is the weather like this afternoon?",
    "Turn off the lights in the kitchen.",
    "How many days are left until the holidays?",
    "Set a timer for ten minutes.",
    "Tell me a short story about a cat.",
    "When does the school bus come on Monday?",
    "Play some quiet music in the living room.",
]
KOREAN = [
    "내일 아침 일곱 시에 깨워 줘",
    "오늘 날씨 어때요",
    "우유랑 계란 사야 해",
    "엄마한테 전화해 줘",
    "부엌 불 좀 꺼 줘",
    "십 분 타이머 맞춰 줘",
    "저녁 메뉴 추천해 줘",
    "이번 주말에 뭐 할까",
    "학교 버스 몇 시에 와",
    "조용한 음악 틀어 줘",
]


def normalized(text):
    text = unicodedata.normalize("NFC", text.lower())
    return " ".join("".join(c if c.isalnum() else " " for c in text).split())


def distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a):
        diagonal, row[0] = row[0], i + 1
        for j, y in enumerate(b):
            diagonal, row[j + 1] = row[j + 1], min(diagonal + (x != y), row[j] + 1, row[j + 1] + 1)
    return row[len(b)]


def error_rate(reference, heard, korean):
    if korean:
        ref, got = list(normalized(reference).replace(" ", "")), list(normalized(heard).replace(" ", ""))
    else:
        ref, got = normalized(reference).split(), normalized(heard).split()
    return distance(ref, got), len(ref)


def speak(folder, text, voice, index):
    raw, out = folder / f"{voice}-{index}.raw.wav", folder / f"{voice}-{index}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150" if voice == "en-us" else "130", "-w", raw, text], check=True)
    subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", out, "pad", "0.3", "0.3"], check=True)
    seconds = float(subprocess.run(["soxi", "-D", out], capture_output=True, text=True, check=True).stdout)
    return out, seconds


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(fields, path):
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
             "Content-Type: audio/wav\r\n\r\n").encode() + Path(path).read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def whisper_cpp(server, model, clips):
    port = free_port()
    process = subprocess.Popen([server, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-t", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        results = []
        for path, seconds, language, _ in clips:
            body, kind = multipart({"response_format": "json", "language": language, "temperature": "0"}, path)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/inference", data=body,
                                             headers={"Content-Type": kind})
            started = time.monotonic()
            text = json.load(urllib.request.urlopen(request, timeout=300))["text"]
            results.append((text.strip(), time.monotonic() - started))
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return results, peak / 1024
    finally:
        process.terminate()
        process.wait()


FASTER = r"""
import json, resource, sys, time
from faster_whisper import WhisperModel
model_dir, compute, clips = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=2, num_workers=1)
out = []
for path, language in clips:
    started = time.monotonic()
    segments, _ = model.transcribe(path, language=language, beam_size=1, temperature=0.0,
                                   condition_on_previous_text=False, vad_filter=False)
    text = "".join(segment.text for segment in segments)
    out.append([text.strip(), time.monotonic() - started])
print(json.dumps({"results": out, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def faster_whisper(python, model_dir, compute, clips):
    listed = json.dumps([[str(path), language] for path, _, language, _ in clips])
    done = subprocess.run([python, "-c", FASTER, model_dir, compute, listed], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return [tuple(result) for result in answer["results"]], answer["peak_mb"]


def main():
    server, model, ct2_dir, python = sys.argv[1:5]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clips = []
        for index, text in enumerate(ENGLISH):
            path, seconds = speak(folder, text, "en-us", index)
            clips.append((path, seconds, "en", text))
        for index, text in enumerate(KOREAN):
            path, seconds = speak(folder, text, "ko", index)
            clips.append((path, seconds, "ko", text))
        engines = {
            "whisper.cpp (f16, the hub's)": whisper_cpp(server, model, clips),
            "faster-whisper (CTranslate2 float32)": faster_whisper(python, ct2_dir, "float32", clips),
            "faster-whisper (CTranslate2 int8)": faster_whisper(python, ct2_dir, "int8", clips),
        }
    hub = "whisper.cpp (f16, the hub's)"
    print(f"{len(ENGLISH)} English and {len(KOREAN)} Korean sentences spoken by espeak-ng, "
          f"{sum(c[1] for c in clips):.1f} s of audio; two threads each\n")
    summary = {}
    for name, (results, peak) in engines.items():
        for language in ("en", "ko"):
            picked = [(clip, result) for clip, result in zip(clips, results) if clip[2] == language]
            audio = sum(clip[1] for clip, _ in picked)
            busy = sum(result[1] for _, result in picked)
            errors = [error_rate(clip[3], result[0], language == "ko") for clip, result in picked]
            rate = sum(e for e, _ in errors) / sum(n for _, n in errors)
            summary[(name, language)] = (audio / busy, rate)
            measure = "CER" if language == "ko" else "WER"
            print(f"{name:40} {language}: real-time factor {audio / busy:6.1f}x  {measure} {rate:5.1%}")
        print(f"{name:40} peak resident memory {peak:6.0f} MB")
    print()
    for name, (results, peak) in engines.items():
        if name == hub:
            continue
        agree = sum(normalized(a[0]) == normalized(b[0]) for a, b in zip(engines[hub][0], results))
        for language in ("en", "ko"):
            ratio = summary[(hub, language)][0] / summary[(name, language)][0]
            print(f"whisper.cpp / {name} speed ({language}): {ratio:.2f}")
        print(f"whisper.cpp / {name} memory: {engines[hub][1] / peak:.2f}")
        print(f"same words as whisper.cpp: {agree} of {len(clips)} sentences")
    print("\nsentences as heard by whisper.cpp:")
    for clip, result in zip(clips, engines[hub][0]):
        print(f"  {clip[3]}  ->  {result[0]}")


if __name__ == "__main__":
    main()
