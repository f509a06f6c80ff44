"""Unit conversion between common units of length, mass, temperature, time and volume."""

from __future__ import annotations

from typing import Literal, get_args

from runtime import tool

Unit = Literal[
    "m", "km", "cm", "mm", "mi", "yd", "ft", "in",
    "kg", "g", "mg", "lb", "oz",
    "c", "f", "k",
    "s", "min", "h", "day",
    "l", "ml", "gal",
]  # fmt: skip

# Each unit: (dimension, factor to the base unit). Temperatures are handled apart.
_FACTORS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    "mi": ("length", 1609.344),
    "yd": ("length", 0.9144),
    "ft": ("length", 0.3048),
    "in": ("length", 0.0254),
    "kg": ("mass", 1.0),
    "g": ("mass", 0.001),
    "mg": ("mass", 1e-6),
    "lb": ("mass", 0.45359237),
    "oz": ("mass", 0.028349523125),
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "day": ("time", 86400.0),
    "l": ("volume", 1.0),
    "ml": ("volume", 0.001),
    "gal": ("volume", 3.785411784),
}
_TEMPERATURE = {"c", "f", "k"}
assert set(_FACTORS) | _TEMPERATURE == set(get_args(Unit))


def _to_kelvin(value: float, unit: str) -> float:
    return {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"c": value - 273.15, "f": (value - 273.15) * 9 / 5 + 32, "k": value}[unit]


@tool(timeout_s=5)
def convert_units(value: float, from_unit: Unit, to_unit: Unit) -> dict[str, float | str]:
    """Convert a value from one unit to another of the same kind.

    Args:
        value: The amount to convert.
        from_unit: Unit of `value` (c/f/k are Celsius/Fahrenheit/Kelvin).
        to_unit: Unit to convert into; must measure the same thing.
    """
    if from_unit in _TEMPERATURE or to_unit in _TEMPERATURE:
        if not (from_unit in _TEMPERATURE and to_unit in _TEMPERATURE):
            raise ValueError(f"cannot convert {from_unit} to {to_unit}: not both temperatures")
        converted = _from_kelvin(_to_kelvin(value, from_unit), to_unit)
    else:
        (from_kind, from_factor), (to_kind, to_factor) = _FACTORS[from_unit], _FACTORS[to_unit]
        if from_kind != to_kind:
            raise ValueError(f"cannot convert {from_kind} ({from_unit}) to {to_kind} ({to_unit})")
        converted = value * from_factor / to_factor
    return {"value": round(converted, 10), "unit": to_unit}
