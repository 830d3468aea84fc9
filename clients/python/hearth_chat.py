#!/usr/bin/env python3
"""An independent client of Hearth's encrypted chat, written from
docs/e2ee-protocol.md alone (no code shared with the Rust implementation).

HPKE comes from PyPI's `pyhpke`, ChaCha20-Poly1305 and X25519 from
`cryptography`; HTTP is the standard library's.

    hearth_chat.py chat --url http://127.0.0.1:18789 "What is for dinner?"
    hearth_chat.py verify-vectors docs/e2ee-test-vectors.json

`chat` prints the answer's text on stdout as it streams and the answering
model on stderr. Exit status: 0 complete, 2 the gateway refused or the reply
ended in an error, 3 the reply was cut short or tampered with.
"""

import argparse
import base64
import binascii
import io
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)
SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305; mode auth"
INFO = b"hearth chat v1"
EXPORT_KEY = b"hearth response key"
EXPORT_NONCE = b"hearth response nonce"
B64_ALPHABET = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class ReplyBroken(Exception):
    """The reply was cut short, reordered or altered."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    raw = text.encode("ascii")
    if not set(raw) <= B64_ALPHABET:
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def request_aad(key_id: str, timestamp: int, request_id: str, device_key: str) -> bytes:
    return "\n".join(["hearth-chat-v1", key_id, str(timestamp), request_id, device_key]).encode("utf-8")


def chunk_nonce(base: bytes, seq: int) -> bytes:
    counter = b"\x00\x00\x00\x00" + seq.to_bytes(8, "big")
    return bytes(a ^ b for a, b in zip(base, counter))


def chunk_aad(request_id: str, seq: int, final: bool) -> bytes:
    return b"hearth-chunk-v1" + request_id.encode("utf-8") + seq.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def public_of(private: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_device_key(path: str) -> bytes:
    """The device's private key, created (0600) on first use."""
    try:
        with open(path, encoding="ascii") as handle:
            return unb64(handle.read().strip())
    except FileNotFoundError:
        private = X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(b64(private))
        return private


def seal(public_key: bytes, key_id: str, device_private: bytes, plaintext: bytes, timestamp: int):
    """The envelope, the reply key and base nonce, and the request id."""
    request_id = b64(secrets.token_bytes(16))
    device_key = b64(public_of(device_private))
    aad = request_aad(key_id, timestamp, request_id, device_key)
    recipient = SUITE.kem.deserialize_public_key(public_key)
    sender_key = SUITE.kem.deserialize_private_key(device_private)
    enc, context = SUITE.create_sender_context(recipient, INFO, sks=sender_key)
    ciphertext = context.seal(plaintext, aad=aad)
    envelope = {
        "v": 1,
        "key_id": key_id,
        "device_key": device_key,
        "enc": b64(enc),
        "timestamp": timestamp,
        "request_id": request_id,
        "aad": b64(aad),
        "ciphertext": b64(ciphertext),
    }
    return envelope, context.export(EXPORT_KEY, 32), context.export(EXPORT_NONCE, 12), request_id


class ReplyOpener:
    """Opens the chunks of one reply, strictly in order."""

    def __init__(self, key: bytes, base_nonce: bytes, request_id: str):
        self.cipher = ChaCha20Poly1305(key)
        self.base_nonce = base_nonce
        self.request_id = request_id
        self.next = 0
        self.finished = False

    def open(self, chunk: dict) -> dict:
        if self.finished:
            raise ReplyBroken("a chunk arrived after the final one")
        seq, final = chunk["seq"], chunk["final"]
        if not isinstance(seq, int) or not isinstance(final, bool) or seq != self.next:
            raise ReplyBroken(f"chunk {seq} arrived where chunk {self.next} was due")
        try:
            plaintext = self.cipher.decrypt(
                chunk_nonce(self.base_nonce, seq), unb64(chunk["ct"]), chunk_aad(self.request_id, seq, final)
            )
        except Exception as error:  # InvalidTag, bad base64
            raise ReplyBroken("a chunk was altered") from error
        self.next += 1
        self.finished = final
        event = json.loads(plaintext.decode("utf-8"))
        if (event.get("type") in ("done", "error")) != final:
            raise ReplyBroken("`done` or `error` outside the final chunk, or a final chunk without one")
        return event

    def finish(self):
        if not self.finished:
            raise ReplyBroken("the reply was cut short (no final chunk)")


def sse_events(response):
    """Yields the data of each `chunk` event of a streaming response (other
    event types, `id:` and `retry:` fields and comments are ignored)."""
    data, kind = [], "message"
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data and kind == "chunk":
                yield "\n".join(data)
            data, kind = [], "message"
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "event":
                kind = value


def http(method: str, url: str, token, body=None):
    headers = {"Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    return urllib.request.urlopen(request, timeout=120)


def refused(error: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(error.read())["error"]
        return f"the gateway refused ({error.code}, {detail['code']}): {detail['message']}"
    except Exception:
        return f"the gateway refused ({error.code})"


def gateway_token(arguments):
    """The bearer token: from --token-file, else $HEARTH_GATEWAY_TOKEN.
    Never an argument, so other users cannot read it in `ps`."""
    if arguments.token_file:
        with open(arguments.token_file, encoding="utf-8") as file:
            return file.read().strip()
    return os.environ.get("HEARTH_GATEWAY_TOKEN")


def chat(arguments) -> int:
    base = arguments.url.rstrip("/")
    arguments.token = gateway_token(arguments)
    device_private = load_device_key(arguments.device_key)
    try:
        with http("GET", f"{base}/api/pubkey", arguments.token) as response:
            published = json.load(response)
        if published.get("suite") != SUITE_NAME:
            print(f"the gateway uses another suite: {published.get('suite')}", file=sys.stderr)
            return 2
        keys = published["keys"]
    except urllib.error.HTTPError as error:
        print(refused(error), file=sys.stderr)
        return 2
    current = next(key for key in keys if key["status"] == "current")
    payload = {"message": arguments.message, "channel": arguments.channel}
    if arguments.max_tokens is not None:
        payload["max_tokens"] = arguments.max_tokens
    plaintext = json.dumps(payload).encode("utf-8")
    envelope, key, nonce, request_id = seal(unb64(current["public_key"]), current["id"], device_private, plaintext, int(time.time()))
    opener = ReplyOpener(key, nonce, request_id)
    status = 0
    try:
        with http("POST", f"{base}/api/chat", arguments.token, json.dumps(envelope).encode("utf-8")) as response:
            for data in sse_events(response):
                event = opener.open(json.loads(data))
                kind = event["type"]
                if kind in ("delta", "notice"):
                    sys.stdout.write(event["text"])
                    sys.stdout.flush()
                elif kind == "meta":
                    print(f"[{event['model']}]", file=sys.stderr)
                elif kind == "done":
                    sys.stdout.write("\n")
                elif kind == "error":
                    print(f"error {event['code']}: {event['message']}", file=sys.stderr)
                    status = 2
        opener.finish()
    except urllib.error.HTTPError as error:
        print(refused(error), file=sys.stderr)
        return 2
    except ReplyBroken as error:
        print(f"\nthe reply is not trustworthy: {error}", file=sys.stderr)
        return 3
    return status


def verify_vectors(path: str) -> int:
    """Checks the published vectors with this implementation."""
    with open(path, encoding="utf-8") as handle:
        vectors = json.load(handle)
    envelope = vectors["envelope"]
    gateway_private = unb64(vectors["gateway_private_key"])
    device_private = unb64(vectors["device_private_key"])
    assert b64(public_of(gateway_private)) == vectors["gateway_public_key"], "gateway public key"
    assert b64(public_of(device_private)) == vectors["device_public_key"] == envelope["device_key"], "device key"
    aad = request_aad(envelope["key_id"], envelope["timestamp"], envelope["request_id"], envelope["device_key"])
    assert aad.decode("utf-8") == vectors["request_aad_text"], "request aad text"
    assert b64(aad) == envelope["aad"], "request aad"

    context = SUITE.create_recipient_context(
        unb64(envelope["enc"]),
        SUITE.kem.deserialize_private_key(gateway_private),
        INFO,
        pks=SUITE.kem.deserialize_public_key(unb64(envelope["device_key"])),
    )
    assert context.open(unb64(envelope["ciphertext"]), aad=aad) == vectors["request_plaintext"].encode("utf-8"), "request"
    key = context.export(EXPORT_KEY, 32)
    nonce = context.export(EXPORT_NONCE, 12)
    assert key.hex() == vectors["response_key_hex"], "exported key"
    assert nonce.hex() == vectors["response_base_nonce_hex"], "exported nonce"

    # The sender, bit for bit: with the published ephemeral key, sealing
    # the plaintext gives the vector's enc and ciphertext exactly.
    ephemeral = SUITE.kem.derive_key_pair(bytes.fromhex(vectors["ephemeral_ikm_hex"]))
    assert b64(ephemeral.private_key.to_private_bytes()) == vectors["ephemeral_private_key"], "ephemeral private key"
    enc, sender = SUITE.create_sender_context(
        SUITE.kem.deserialize_public_key(unb64(vectors["gateway_public_key"])),
        INFO,
        sks=SUITE.kem.deserialize_private_key(device_private),
        eks=ephemeral,
    )
    assert b64(enc) == envelope["enc"], "enc"
    assert b64(sender.seal(vectors["request_plaintext"].encode("utf-8"), aad=aad)) == envelope["ciphertext"], "ciphertext"

    # A forged sender (mode auth) must not open.
    stranger = X25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        SUITE.create_recipient_context(
            unb64(envelope["enc"]), SUITE.kem.deserialize_private_key(gateway_private), INFO,
            pks=SUITE.kem.deserialize_public_key(stranger),
        ).open(unb64(envelope["ciphertext"]), aad=aad)
        raise AssertionError("a request opened for the wrong sender")
    except AssertionError:
        raise
    except Exception:
        pass

    cipher = ChaCha20Poly1305(key)
    request_id = envelope["request_id"]
    for seq, chunk in enumerate(vectors["chunks"]):
        sealed = chunk["sealed"]
        assert chunk_nonce(nonce, seq).hex() == chunk["nonce_hex"], f"nonce {seq}"
        assert chunk_aad(request_id, seq, sealed["final"]).hex() == chunk["aad_hex"], f"aad {seq}"
        again = cipher.encrypt(chunk_nonce(nonce, seq), chunk["plaintext"].encode("utf-8"), chunk_aad(request_id, seq, sealed["final"]))
        assert b64(again) == sealed["ct"], f"chunk {seq} ciphertext"
        event = next(sse_events(io.BytesIO(chunk["sse"].encode("utf-8"))))
        assert json.loads(event) == sealed, f"chunk {seq} event"

    chunks = [chunk["sealed"] for chunk in vectors["chunks"]]
    opener = ReplyOpener(key, nonce, request_id)
    events = [opener.open(chunk) for chunk in chunks]
    opener.finish()
    assert events[-1]["type"] == "done"
    for broken, why in [
        (chunks[:-1], "cut short"),
        ([chunks[0], chunks[2], chunks[1], chunks[3]], "reordered"),
        ([chunks[0], dict(chunks[1], final=True)], "relabelled final"),
    ]:
        opener = ReplyOpener(key, nonce, request_id)
        try:
            for chunk in broken:
                opener.open(chunk)
            opener.finish()
            raise AssertionError(f"a {why} reply was accepted")
        except ReplyBroken:
            pass
    print(f"vectors ok: request, exports and {len(chunks)} chunks")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("chat", help="ask a question and print the streamed answer")
    ask.add_argument("message")
    ask.add_argument("--url", default="http://127.0.0.1:18789")
    ask.add_argument("--channel", default="python")
    ask.add_argument("--max-tokens", type=int)
    ask.add_argument("--token-file", help="a file holding the gateway token (default: $HEARTH_GATEWAY_TOKEN)")
    ask.add_argument("--device-key", default=os.path.expanduser("~/.config/hearth/python-device.key"))
    verify = commands.add_parser("verify-vectors", help="check the published test vectors")
    verify.add_argument("path")
    arguments = parser.parse_args()
    try:
        if arguments.command == "chat":
            return chat(arguments)
        return verify_vectors(arguments.path)
    except (urllib.error.URLError, ConnectionError) as error:
        print(f"cannot reach the gateway: {error}", file=sys.stderr)
        return 2
    except (AssertionError, binascii.Error, ValueError, KeyError) as error:
        print(f"failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
