"""Ed25519 keys of installs and of the aggregator: create, load, sign, verify.

An install signs its contribution with its own key (the aggregator counts installs by the key's
id, never by a household id); the aggregator signs every release with its key, and an install
trusts a release only when it verifies against the aggregator's *public* key it was given
(``selflearn community pull --public-key``). Keys are PEM files (PKCS#8 private keys, written
readable by their owner only; ``<key>.pub`` beside each holds the public key as SubjectPublicKeyInfo).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from selflearn.core.errors import ConfigError

__all__ = [
    "key_id",
    "load_or_create_key",
    "load_public_key",
    "public_hex",
    "public_key_from_hex",
    "sign",
    "verify",
]


def load_or_create_key(path: str | Path, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path`` (PEM); with ``create``, a new one is written there (mode
    0600) and its public key to ``<path>.pub`` when the file does not exist."""
    src = Path(path)
    if not src.exists():
        if not create:
            raise ConfigError(f"no key at {src}")
        key = Ed25519PrivateKey.generate()
        src.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public_path(src).write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return key
    try:
        loaded = serialization.load_pem_private_key(src.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{src} is not a readable PEM private key: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{src} holds a {type(loaded).__name__}, not an Ed25519 private key")
    return loaded


def public_path(private: str | Path) -> Path:
    """Where the public key of the private key file ``private`` is written."""
    p = Path(private)
    return p.with_name(p.name + ".pub")


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path``: PEM (SubjectPublicKeyInfo), or 64 hex digits."""
    src = Path(path)
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the public key {src}: {exc}") from exc
    text = data.decode("ascii", "replace").strip()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower()):
        return public_key_from_hex(text)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{src} is not an Ed25519 public key (PEM or 64 hex digits): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{src} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def public_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw public key as 64 hex digits."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """The public key written as 64 hex digits (:func:`public_hex`)."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError as exc:
        raise ConfigError(f"not an Ed25519 public key (64 hex digits): {text[:80]!r}") from exc


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey | str) -> str:
    """A short stable id of a key (16 hex digits of the BLAKE2b hash of its raw public key): how
    the aggregator counts installs."""
    raw = key if isinstance(key, str) else public_hex(key)
    return hashlib.blake2b(bytes.fromhex(raw), digest_size=8).hexdigest()


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """The signature of ``data`` as hex."""
    return key.sign(data).hex()


def verify(public: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    """True when ``signature`` (hex) is ``public``'s signature of ``data``."""
    try:
        public.verify(bytes.fromhex(signature), data)
    except (InvalidSignature, ValueError):
        return False
    return True
