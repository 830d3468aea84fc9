#!/usr/bin/env python3
"""How fast and how big the two packaged embedding models are on this
machine: multilingual-e5-small (the hub's search model) against
all-MiniLM-L6-v2, each served by the cached llama-server as the hub serves
it (one thread, --embeddings --pooling mean), asked one text at a time for
the recall sets' questions and passages (assistant/tests/recall), with the
E5 prefixes. Prints milliseconds per text (median, 90th percentile),
llama-server's resident memory after the run, and e5's ratio to MiniLM.

    scripts/bench-embeddings.py     # needs scripts/install-test-deps.sh's caches
"""
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HEARTH_CACHE_DIR", Path.home() / ".cache/hearth"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def texts():
    questions, passages = [], []
    for language in ("en", "ko"):
        folder = ROOT / "assistant/tests/recall" / language
        for line in (folder / "questions.tsv").read_text().splitlines():
            if line and not line.startswith("#"):
                questions.append(line.split("\t")[0])
        for document in sorted(folder.glob("*.md")):
            for part in document.read_text().split("\n## ")[1:]:
                passages.append(part.strip())
    return questions, passages


def serve(model):
    port = free_port()
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [str(CACHE / "llama-server-0.3.36/llama-server"), "-m", model, "--embeddings", "--pooling", "mean",
         "--host", "127.0.0.1", "--port", str(port), "-t", "1", "-c", "2048", "-b", "512", "-ub", "512",
         "--no-webui"],
        stdout=log, stderr=log)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
                if answer.status == 200:
                    return server, port
        except OSError:
            if server.poll() is not None:
                sys.exit("llama-server did not start")
            time.sleep(0.1)


def timed(port, inputs):
    times = []
    for text in inputs:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/embeddings", data=json.dumps({"input": [text]}).encode(),
            headers={"content-type": "application/json"})
        started = time.perf_counter()
        urllib.request.urlopen(request).read()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    questions, passages = texts()
    models = [
        ("multilingual-e5-small", glob.glob(str(CACHE / "e5-*/multilingual-e5-small.q4_0.gguf"))[0], "query: ", "passage: "),
        ("all-MiniLM-L6-v2", glob.glob(str(CACHE / "minilm-*/all-MiniLM-L6-v2.f16.gguf"))[0], "", ""),
    ]
    results = {}
    print(f"{len(questions)} questions, {len(passages)} passages, one at a time, one thread")
    print("| model | question: median / p90 ms | passage: median / p90 ms | llama-server RSS |")
    print("| --- | --- | --- | --- |")
    for name, path, query, passage in models:
        server, port = serve(path)
        try:
            timed(port, [query + q for q in questions[:5]])  # warm up
            asked = timed(port, [query + q for q in questions])
            read = timed(port, [passage + p for p in passages])
            rss = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait()
        results[name] = (asked, read, rss)
        print(f"| {name} | {asked[0]:.1f} / {asked[1]:.1f} | {read[0]:.1f} / {read[1]:.1f} | {rss:.0f} MiB |")
    e5, minilm = results["multilingual-e5-small"], results["all-MiniLM-L6-v2"]
    print(f"e5 / MiniLM: questions {e5[0][0] / minilm[0][0]:.2f}x, passages {e5[1][0] / minilm[1][0]:.2f}x, "
          f"memory {e5[2] / minilm[2]:.2f}x")


if __name__ == "__main__":
    main()
