"""The typed-field codec of the cluster messages (protocol/cluster.py): one check per field, chosen once.

Each dataclass field's annotation picks a function that checks a wire value and converts it
(a list back to a tuple); a decoder and an encoder are built once per message class, so that
decoding a message costs a lookup and a check per field, and a wrong value is named precisely.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar

from .errors import ProtocolError

JSON: TypeAlias = Any
"""User data (event args, a reply's body): the layer carries it, nothing here looks inside."""

T = TypeVar("T")


class MalformedMessage(ProtocolError):
    """A channel-layer dict that breaks the format: not a dict, unknown type, missing or mistyped field."""


class Wrong(Exception):
    """A value of the wrong type; the decoder turns it into MalformedMessage naming the field."""


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Wrong


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Wrong


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise Wrong


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Wrong


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise Wrong


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    raise Wrong


def _frame(value: Any) -> str | bytes:
    if isinstance(value, (str, bytes)):
        return value
    raise Wrong


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Wrong
    for item in value:
        if not isinstance(item, str):
            raise Wrong
    return tuple(value)


def _frames(value: Any) -> tuple[str | bytes, ...]:
    if not isinstance(value, list):
        raise Wrong
    for item in value:
        if not isinstance(item, (str, bytes)):
            raise Wrong
    return tuple(value)


def _list(value: Any) -> tuple[Any, ...]:
    if isinstance(value, list):
        return tuple(value)
    raise Wrong


def _expiries(value: Any) -> tuple[tuple[str, str | None], ...]:
    if not isinstance(value, dict):
        raise Wrong
    for key, expiry in value.items():
        if not isinstance(key, str) or not (expiry is None or isinstance(expiry, str)):
            raise Wrong
    return tuple(value.items())


def _same(value: Any) -> Any:
    return value


Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]
# annotation -> (check and convert a wire value, wire value of a field value or None if it is one, what it must be)
CODECS: dict[object, tuple[Decode, Encode | None, str]] = {
    str: (_str, None, "a str"),
    str | None: (_optional_str, None, "a str or None"),
    bool: (_bool, None, "a bool"),
    int: (_int, None, "an int"),
    float: (_number, None, "a number"),
    bytes: (_bytes, None, "bytes"),
    str | bytes: (_frame, None, "a str or bytes"),
    tuple[str, ...]: (_strs, list, "a list of str"),
    tuple[str | bytes, ...]: (_frames, list, "a list of str or bytes"),
    tuple[JSON, ...]: (_list, list, "a list"),
    tuple[tuple[str, str | None], ...]: (_expiries, dict, "a dict of str to str or None"),
    JSON: (_same, None, "anything"),
}
# name, wire key, decode, encode, what it must be, the default (REQUIRED: none, the key must be there)
Field = tuple[str, str, Decode, Encode | None, str, Any]
REQUIRED = object()


def fields_of(cls: type) -> tuple[Field, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            f.name,
            f.metadata.get("wire", f.name),
            *CODECS[hints[f.name]],
            REQUIRED if f.default is dataclasses.MISSING else f.default,
        )
        for f in dataclasses.fields(cls)
    )


def decoder(cls: Callable[..., T], fields: tuple[Field, ...], label: str) -> Callable[[dict[str, Any]], T]:
    """A decoder for one class, so that decoding one message costs a lookup and a check per field.

    A field with a default may be missing: a process of the previous release, still running
    during a rolling restart, does not send the fields added since.
    """
    plan = tuple((key, decode, default) for _, key, decode, _, _, default in fields)
    required = tuple(key for key, _, default in plan if default is REQUIRED)

    def decode(raw: dict[str, Any]) -> T:
        try:
            return cls(*[convert(raw[key]) for key, convert, _ in plan])
        except KeyError:
            if all(key in raw for key in required):
                return decode_with_defaults(raw)
            raise MalformedMessage(_diagnosis(label, fields, raw)) from None
        except Wrong:
            raise MalformedMessage(_diagnosis(label, fields, raw)) from None

    def decode_with_defaults(raw: dict[str, Any]) -> T:
        try:
            return cls(*[convert(raw[key]) if key in raw else default for key, convert, default in plan])
        except Wrong:
            raise MalformedMessage(_diagnosis(label, fields, raw)) from None

    return decode


def _diagnosis(label: str, fields: tuple[Field, ...], raw: dict[str, Any]) -> str:
    """The first bad field, found again on the slow path so that the fast one need not keep track."""
    for _, key, decode, _, expected, default in fields:
        if key not in raw and default is not REQUIRED:
            continue
        if key not in raw:
            return f"{label}: {key!r} is missing"
        try:
            decode(raw[key])
        except Wrong:
            return f"{label}: {key!r} must be {expected}"
    return f"{label}: malformed"  # not reached: a field failed, or the fast path would have succeeded


def encoder(fields: tuple[Field, ...], head: Mapping[str, Any]) -> Callable[[Any], dict[str, Any]]:
    plan = tuple((name, key, encode) for name, key, _, encode, _, _ in fields)

    def encode(value: Any) -> dict[str, Any]:
        wire = dict(head)
        for name, key, convert in plan:
            item = getattr(value, name)
            wire[key] = item if convert is None else convert(item)
        return wire

    return encode
