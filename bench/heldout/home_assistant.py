"""Home assistant: lights, heating, locks, sensors, reminders and the shopping list.

Held-out evaluation module (see README.md). The bodies are fakes that return
plausible hub responses; nothing talks to real devices.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Literal

from runtime import tool

Room = Literal[
    "living_room",
    "kitchen",
    "dining_room",
    "bedroom",
    "kids_room",
    "office",
    "hallway",
    "bathroom",
    "garage",
    "garden",
]

LightColor = Literal["warm_white", "cool_white", "red", "orange", "green", "blue", "purple"]
Zone = Literal["whole_house", "upstairs", "downstairs"]
Door = Literal["front", "back", "garage", "side_gate"]
Sensor = Literal["temperature", "humidity", "air_quality", "power_usage", "motion"]

_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@tool(timeout_s=5)
def set_lights(
    room: Room,
    on: bool = True,
    brightness: int | None = None,
    color: LightColor | None = None,
) -> dict[str, object]:
    """Switch the lights in one room on or off, optionally dimming or recolouring them.

    Args:
        room: Room whose lights to change.
        on: True to switch on, False to switch off.
        brightness: Brightness in percent, 1-100. Leave unset to keep the current level.
        color: Light colour; only the colour bulbs in the living room, bedroom and
            kids' room support colours other than white.
    """
    if brightness is not None and not 1 <= brightness <= 100:
        raise ValueError("brightness must be between 1 and 100")
    state: dict[str, object] = {"room": room, "on": on}
    if on:
        state["brightness"] = brightness if brightness is not None else 80
        state["color"] = color or "warm_white"
    return state


@tool(timeout_s=5)
def set_thermostat(
    temperature_c: float,
    zone: Zone = "whole_house",
    mode: Literal["heat", "cool", "auto"] = "auto",
) -> dict[str, object]:
    """Set the target temperature of the heating/cooling system.

    Args:
        temperature_c: Target temperature in degrees Celsius (10-30).
        zone: Heating zone to change.
        mode: Heat, cool, or let the system choose.
    """
    if not 10 <= temperature_c <= 30:
        raise ValueError("target temperature must be between 10 and 30 °C")
    return {"zone": zone, "target_c": temperature_c, "mode": mode, "current_c": 19.5}


@tool(timeout_s=5)
def set_lock(door: Door, locked: bool = True) -> dict[str, object]:
    """Lock or unlock a smart lock.

    Args:
        door: Which lock.
        locked: True to lock, False to unlock.
    """
    return {"door": door, "locked": locked, "battery_percent": 64}


@tool(timeout_s=5)
def read_sensor(sensor: Sensor, room: Room | None = None) -> dict[str, object]:
    """Get the latest reading of a sensor.

    Args:
        sensor: Kind of reading.
        room: Room to read; omit for the house-wide value (average, or total for power).
    """
    fake = {
        "temperature": (20.4, "°C"),
        "humidity": (48, "%"),
        "air_quality": (31, "AQI"),
        "power_usage": (1.8, "kW"),
        "motion": (False, "detected"),
    }
    value, unit = fake[sensor]
    return {"sensor": sensor, "room": room or "house", "value": value, "unit": unit}


@tool(timeout_s=5)
def create_reminder(
    text: str,
    date: str,
    time: str = "09:00",
    repeat: Literal["never", "daily", "weekly", "monthly"] = "never",
    announce_on_speakers: bool = False,
) -> dict[str, object]:
    """Create a reminder that pops up on the household's phones.

    Args:
        text: What to be reminded of.
        date: Day of the (first) reminder, YYYY-MM-DD.
        time: Time of day, 24-hour HH:MM.
        repeat: How often the reminder repeats after the first one.
        announce_on_speakers: Also say it out loud on the home speakers.
    """
    _dt.date.fromisoformat(date)
    if not _TIME_RE.match(time):
        raise ValueError("time must be HH:MM (24-hour)")
    return {
        "id": "rem_7f3a",
        "text": text,
        "when": f"{date}T{time}",
        "repeat": repeat,
        "speakers": announce_on_speakers,
    }


@tool(timeout_s=5)
def add_to_shopping_list(
    items: list[str],
    list_name: Literal["groceries", "hardware", "pharmacy"] = "groceries",
) -> dict[str, object]:
    """Add items to one of the shared shopping lists.

    Args:
        items: Items to add, one entry per item, e.g. ["oat milk", "eggs"].
        list_name: Which list.
    """
    if not items:
        raise ValueError("give at least one item")
    return {"list": list_name, "added": items, "total_items": 7 + len(items)}
