"""Corporate travel desk: flights, hotels, bookings and entry requirements.

Held-out evaluation module (see README.md). Everything here is a fake backed by
canned data; no booking system is contacted.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Literal

from pydantic import Field

from runtime import tool

AirportCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
IsoDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
FlightNumber = Annotated[str, Field(pattern=r"^[A-Z0-9]{2}\d{1,4}$")]
BookingRef = Annotated[str, Field(pattern=r"^[A-Z0-9]{6}$")]


def _check_date(value: str) -> _dt.date:
    return _dt.date.fromisoformat(value)


@tool(timeout_s=20)
def search_flights(
    origin: AirportCode,
    destination: AirportCode,
    depart_date: IsoDate,
    return_date: IsoDate | None = None,
    passengers: Annotated[int, Field(ge=1, le=9)] = 1,
    cabin: Literal["economy", "premium_economy", "business", "first"] = "economy",
    nonstop_only: bool = False,
) -> list[dict[str, object]]:
    """Search available flights between two airports.

    Args:
        origin: IATA code of the departure airport, e.g. "LHR".
        destination: IATA code of the arrival airport, e.g. "JFK".
        depart_date: Outbound date, YYYY-MM-DD.
        return_date: Return date, YYYY-MM-DD; omit for a one-way search.
        passengers: Number of travellers (1-9).
        cabin: Cabin class. Business and first need manager approval.
        nonstop_only: Only show direct flights.
    """
    out = _check_date(depart_date)
    if return_date is not None and _check_date(return_date) < out:
        raise ValueError("return_date is before depart_date")
    fares = [(f"{origin[:1]}X{410 + i}", 7 + 3 * i, 189.0 + 55 * i, i) for i in range(3)]
    return [
        {
            "flight": number,
            "route": f"{origin}-{destination}",
            "departs": f"{depart_date}T{hour:02d}:15",
            "stops": 0 if nonstop_only else stops,
            "cabin": cabin,
            "total_eur": round(price * passengers * (3.2 if cabin != "economy" else 1), 2),
        }
        for number, hour, price, stops in fares
    ]


@tool(timeout_s=10)
def get_flight_status(
    flight_number: FlightNumber, date: IsoDate | None = None
) -> dict[str, object]:
    """Live status of a flight: gate, delay, departure and arrival times.

    Args:
        flight_number: Airline code and number without spaces, e.g. "BA117" or "U24512".
        date: Scheduled departure date, YYYY-MM-DD; defaults to today.
    """
    day = _check_date(date) if date else _dt.date.today()
    return {
        "flight": flight_number,
        "date": day.isoformat(),
        "status": "delayed",
        "delay_min": 35,
        "gate": "B42",
    }


@tool(timeout_s=20)
def search_hotels(
    city: Annotated[str, Field(min_length=2)],
    check_in: IsoDate,
    nights: Annotated[int, Field(ge=1, le=30)],
    max_price_per_night: Annotated[float, Field(gt=0)] | None = None,
    near: str | None = None,
) -> list[dict[str, object]]:
    """Find hotels with rooms free for the given stay, within the company rate limits.

    Args:
        city: City name, e.g. "Munich".
        check_in: Arrival date, YYYY-MM-DD.
        nights: Length of stay in nights (1-30).
        max_price_per_night: Highest nightly rate in EUR.
        near: A landmark or address to sort results by distance to, e.g. an office or venue.
    """
    _check_date(check_in)
    cap = max_price_per_night or 250.0
    return [
        {"hotel_id": f"HTL-{40117 + i * 913}", "name": name, "city": city, "eur_per_night": rate}
        for i, (name, rate) in enumerate([("Park Inn Centrum", 129.0), ("Hotel Adler", 164.0)])
        if rate <= cap
    ]


@tool(timeout_s=30)
def book_hotel(
    hotel_id: Annotated[str, Field(pattern=r"^HTL-\d{5}$")],
    check_in: IsoDate,
    nights: Annotated[int, Field(ge=1, le=30)],
    guests: Annotated[int, Field(ge=1, le=4)] = 1,
    breakfast: bool = False,
    special_requests: Annotated[str, Field(max_length=300)] | None = None,
) -> dict[str, object]:
    """Book a room at a hotel found with search_hotels.

    Args:
        hotel_id: Hotel identifier, e.g. "HTL-40117".
        check_in: Arrival date, YYYY-MM-DD.
        nights: Number of nights (1-30).
        guests: People sharing the room (1-4).
        breakfast: Add breakfast to the rate.
        special_requests: Free-text note passed to the hotel (late arrival, quiet room...).
    """
    start = _check_date(check_in)
    return {
        "booking_ref": "K7Q2ZP",
        "hotel_id": hotel_id,
        "check_in": start.isoformat(),
        "check_out": (start + _dt.timedelta(days=nights)).isoformat(),
        "guests": guests,
        "breakfast": breakfast,
        "special_requests": special_requests,
    }


@tool(timeout_s=30)
def cancel_booking(
    booking_ref: BookingRef,
    reason: Annotated[str, Field(max_length=500)] | None = None,
    notify_traveller: bool = True,
) -> dict[str, object]:
    """Cancel a flight or hotel booking made through the travel desk.

    Args:
        booking_ref: Six-character booking reference, e.g. "K7Q2ZP".
        reason: Why it is cancelled; shown in the travel report.
        notify_traveller: Email the traveller a cancellation notice.
    """
    return {
        "booking_ref": booking_ref,
        "status": "cancelled",
        "refund_eur": 212.40,
        "traveller_notified": notify_traveller,
        "reason": reason,
    }


@tool(timeout_s=10)
def check_entry_requirements(
    passport_country: CountryCode,
    destination_country: CountryCode,
    stay_days: Annotated[int, Field(ge=1, le=365)] = 14,
    purpose: Literal["business", "tourism", "transit"] = "business",
) -> dict[str, object]:
    """Visa and entry rules for a traveller's passport and destination.

    Args:
        passport_country: ISO 3166-1 alpha-2 code of the passport, e.g. "IN".
        destination_country: ISO 3166-1 alpha-2 code of the country visited, e.g. "JP".
        stay_days: Length of the stay in days.
        purpose: Purpose of the trip.
    """
    same = passport_country == destination_country
    return {
        "passport": passport_country,
        "destination": destination_country,
        "visa_required": not same and stay_days > 90,
        "eta_required": not same and destination_country in {"GB", "US", "CA", "AU"},
        "max_stay_days": 90,
        "purpose": purpose,
    }
