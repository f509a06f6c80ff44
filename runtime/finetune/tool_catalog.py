"""Synthetic tool modules for training a general tool-calling adapter.

A general adapter must learn the skill, not a module: read the tool list it
is given, pick the tool a request needs (or none), and copy every value from
the request into the right argument. So it trains on many modules it will
never see again: `random_modules` draws tools from a catalog of everyday
domains, renames them (snake_case, camelCase, prefixes), rewords their
descriptions, swaps parameter names for synonyms, and groups them into
modules of two to six tools, mixing domains. Each synthetic tool is a plain
`SpecTool` (name, description, JSON Schema): synthesis needs nothing else.

The catalog is compact on purpose: one line per tool, parameters as
`name:kind` with `?` for optional (`kind`: str, text, int[lo,hi], num[lo,hi],
enum(a|b|c), bool, date, time, email, list, id(SHAPE)).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from runtime.tools import function_entry

__all__ = ["CATALOG", "SpecModule", "SpecTool", "parse_spec", "random_modules"]


@dataclasses.dataclass(frozen=True, slots=True)
class SpecTool:
    """A tool known only by its schema (enough to synthesise examples for it)."""

    name: str
    description: str
    parameters: dict[str, Any]
    domain: str = ""
    examples: tuple[Any, ...] = ()

    def openai_schema(self) -> dict[str, Any]:
        return function_entry(self.name, self.description, self.parameters)


@dataclasses.dataclass(frozen=True, slots=True)
class SpecModule:
    """A generated module: its tools, and which domains they come from."""

    name: str
    tools: tuple[SpecTool, ...]

    def __iter__(self) -> Any:
        return iter(self.tools)

    def __len__(self) -> int:
        return len(self.tools)

    def openai_schemas(self) -> list[dict[str, Any]]:
        return [t.openai_schema() for t in self.tools]

    @property
    def domains(self) -> set[str]:
        return {t.domain for t in self.tools}


# domain | tool name | description | parameters (name:kind "description")
CATALOG = """
home | set_lights | Turn the lights in a room on or off. | room:enum(kitchen|living_room|bedroom|office|garage|hallway) "Which room." ; on:bool "True to switch on." ; brightness?:int[1,100] "Brightness in percent."
home | set_thermostat | Set the target temperature of the heating. | temperature:num[10,30] "Target temperature in degrees Celsius." ; zone?:enum(upstairs|downstairs|basement) "Heating zone."
home | lock_door | Lock or unlock a door. | door:enum(front|back|garage|patio) "Which door." ; locked:bool "True to lock, false to unlock."
home | start_vacuum | Start the robot vacuum. | room?:enum(kitchen|living_room|bedroom|office|hallway) "Room to clean; the whole floor when left out." ; mode?:enum(quiet|standard|turbo) "Suction mode."
home | get_energy_usage | Get the household electricity usage for a day. | date:date "Day, YYYY-MM-DD."
reminders | create_reminder | Create a reminder. | text:text "What to be reminded about." ; date:date "Day, YYYY-MM-DD." ; time?:time "Time of day, HH:MM."
reminders | set_timer | Start a countdown timer. | minutes:int[1,240] "Length of the timer in minutes." ; label?:str "Name shown when it rings."
reminders | add_to_list | Add items to a shopping or to-do list. | items:list "Items to add." ; list_name?:enum(groceries|todo|hardware|gifts) "Which list."
travel | search_flights | Search for flights between two airports. | origin:id(AAA) "Departure airport code, e.g. LHR." ; destination:id(AAA) "Arrival airport code, e.g. JFK." ; date:date "Departure date, YYYY-MM-DD." ; passengers?:int[1,9] "Number of passengers." ; cabin?:enum(economy|premium|business|first) "Cabin class."
travel | get_flight_status | Get the live status of a flight. | flight_number:id(AA999) "Flight number, e.g. BA117."
travel | book_hotel | Book a hotel room. | city:str "City to stay in." ; check_in:date "Arrival date, YYYY-MM-DD." ; nights:int[1,30] "Number of nights." ; guests?:int[1,6] "Number of guests."
travel | rent_car | Reserve a rental car. | pickup_city:str "Where to pick the car up." ; start_date:date "First day, YYYY-MM-DD." ; days:int[1,30] "How many days." ; car_class?:enum(compact|suv|van|luxury) "Car size."
travel | cancel_booking | Cancel a reservation by its reference. | booking_ref:id(AAA999) "Booking reference, 6 characters." ; reason?:text "Why it is cancelled."
weather | get_weather | Get the current weather for a city. | city:str "City name, e.g. Paris." ; units?:enum(celsius|fahrenheit) "Temperature units."
weather | get_forecast | Get the weather forecast for the next days. | location:str "City or town." ; days:int[1,10] "How many days ahead."
weather | get_air_quality | Look up the air quality index for a city. | city:str "City name."
shop | get_order | Look up an order by its number. | order_id:id(SO-99999) "Order number, e.g. SO-10482."
shop | search_products | Search the product catalog. | query:str "What to search for." ; max_price?:num[1,5000] "Highest price in dollars." ; in_stock_only?:bool "Only items in stock."
shop | create_return | Start a return for an order. | order_id:id(SO-99999) "Order number." ; reason:enum(damaged|wrong_item|too_small|too_big|changed_mind) "Why it is returned."
shop | track_package | Track a parcel. | tracking_number:id(1Z9999999999) "Carrier tracking number."
shop | apply_coupon | Apply a discount code to the cart. | code:id(AAAA99) "Coupon code, e.g. SAVE20."
support | create_ticket | Open a support ticket. | subject:str "Short summary." ; priority:enum(low|normal|high|urgent) "How urgent." ; description?:text "Details."
support | close_ticket | Close a support ticket. | ticket_id:id(T-99999) "Ticket id, e.g. T-48121." ; resolution?:text "How it was solved."
support | assign_ticket | Assign a ticket to an agent. | ticket_id:id(T-99999) "Ticket id." ; agent:person "Who takes it."
messaging | send_message | Send a chat message to a colleague. | recipient:person "Who gets it." ; text:text "The message." ; urgent?:bool "Mark as urgent."
messaging | send_email | Send an email. | to:email "Recipient address." ; subject:str "Subject line." ; body:text "The email text."
messaging | search_inbox | Search the mailbox. | query:str "Words to look for." ; limit?:int[1,50] "How many results."
calendar | create_event | Add an event to the calendar. | title:str "Event title." ; date:date "Day, YYYY-MM-DD." ; start_time:time "Start, HH:MM." ; duration_minutes?:int[15,480] "Length in minutes."
calendar | list_events | List calendar events on a day. | date:date "Day, YYYY-MM-DD."
calendar | invite_attendees | Invite people to a meeting. | event_id:id(EV-9999) "Meeting id." ; attendees:list "Names or emails to invite."
hr | request_leave | Request time off. | start_date:date "First day off, YYYY-MM-DD." ; end_date:date "Last day off, YYYY-MM-DD." ; leave_type?:enum(vacation|sick|parental|unpaid) "Kind of leave."
hr | get_payslip | Get a payslip. | month:enum(january|february|march|april|may|june|july|august|september|october|november|december) "Month." ; year:int[2020,2027] "Year."
hr | find_employee | Find a colleague in the directory. | name:person "Full or partial name."
devops | restart_service | Restart a service. | service:enum(api|web|worker|scheduler|database) "Service name." ; environment:enum(staging|production) "Where."
devops | scale_service | Change how many replicas a service runs. | service:str "Service name." ; replicas:int[0,50] "Number of replicas."
devops | get_logs | Fetch recent log lines of a service. | service:str "Service name." ; lines?:int[10,1000] "How many lines." ; level?:enum(debug|info|warning|error) "Lowest level shown."
devops | page_oncall | Page the on-call engineer. | team:enum(platform|payments|search|mobile) "Which team." ; message:text "What is wrong."
devops | deploy_version | Deploy a version of an application. | app:str "Application name." ; version:id(9.99.9) "Version, e.g. 2.14.1."
finance | convert_currency | Convert an amount between currencies. | amount:num[1,10000] "Amount to convert." ; from_currency:enum(USD|EUR|GBP|JPY|CHF|CAD) "Currency of the amount." ; to_currency:enum(USD|EUR|GBP|JPY|CHF|CAD) "Currency wanted."
finance | get_stock_quote | Get the latest price of a stock. | symbol:id(AAAA) "Ticker symbol, e.g. AAPL."
finance | log_expense | Record an expense. | amount:num[1,2000] "Amount in dollars." ; category:enum(travel|meals|office|software|other) "Expense category." ; note?:text "What it was for."
finance | transfer_money | Transfer money to another account. | to_account:id(99999999) "Account number." ; amount:num[1,5000] "Amount." ; memo?:text "Payment reference."
finance | get_balance | Get the balance of an account. | account_id:id(99999999) "Account number."
food | book_table | Reserve a table at a restaurant. | restaurant:str "Restaurant name." ; date:date "Day, YYYY-MM-DD." ; time:time "Time, HH:MM." ; party_size:int[1,20] "Number of people."
food | find_recipe | Find recipes for a dish. | dish:str "Dish or ingredient." ; servings?:int[1,12] "Number of servings." ; diet?:enum(vegan|vegetarian|gluten_free|none) "Diet."
food | order_delivery | Order food for delivery. | restaurant:str "Where from." ; items:list "Dishes to order." ; address:str "Delivery address."
health | book_appointment | Book a doctor's appointment. | doctor:person "Doctor's name." ; date:date "Day, YYYY-MM-DD." ; time:time "Time, HH:MM."
health | log_workout | Log a workout. | activity:enum(running|cycling|swimming|yoga|strength) "Kind of workout." ; minutes:int[5,300] "Duration in minutes." ; distance_km?:num[0.5,200] "Distance in kilometres."
health | get_step_count | Get the step count for a day. | date:date "Day, YYYY-MM-DD."
media | play_song | Play a song. | title:str "Song title." ; artist?:person "Artist name."
media | set_volume | Set the speaker volume. | level:int[0,100] "Volume in percent."
media | create_playlist | Create a playlist. | name:str "Playlist name." ; songs?:list "Songs to add."
library | search_books | Search the library catalog. | query:str "Title, author or subject." ; available_only?:bool "Only books on the shelf."
library | renew_loan | Renew a borrowed book. | loan_id:id(L-99999) "Loan number."
library | place_hold | Reserve a book. | isbn:id(9999999999999) "The book's ISBN." ; branch?:enum(central|north|east|west) "Pickup branch."
maps | get_directions | Get directions between two places. | origin:str "Start address or place." ; destination:str "Where to go." ; mode?:enum(driving|walking|cycling|transit) "How to travel."
maps | find_nearby | Find places near a location. | query:str "What kind of place." ; location:str "Around where." ; radius_km?:num[0.5,50] "Search radius in km."
education | submit_assignment | Submit an assignment. | course_code:id(AAA999) "Course code, e.g. CS101." ; file_path:str "File to upload."
education | get_grades | Get grades for a course. | course_code:id(AAA999) "Course code." ; term?:enum(fall|spring|summer) "Term."
crm | create_lead | Add a sales lead. | company:str "Company name." ; contact_email:email "Contact's email." ; estimated_value?:num[100,1000000] "Deal size in dollars."
crm | update_deal_stage | Move a deal to another stage. | deal_id:id(D-9999) "Deal id." ; stage:enum(prospect|qualified|proposal|won|lost) "New stage."
crm | log_call | Log a call with a customer. | customer:person "Who you spoke to." ; summary:text "What was said." ; follow_up_date?:date "When to call back, YYYY-MM-DD."
social | post_update | Publish a post. | text:text "The post." ; channel:enum(twitter|linkedin|mastodon|blog) "Where to post."
social | schedule_post | Schedule a post for later. | text:text "The post." ; date:date "Day, YYYY-MM-DD." ; time:time "Time, HH:MM."
transport | get_bus_arrivals | Get the next bus arrivals at a stop. | stop_id:id(9999) "Stop number." ; route?:id(99) "Only this route."
transport | book_ride | Book a taxi ride. | pickup:str "Pickup address." ; dropoff:str "Drop-off address." ; seats?:int[1,6] "Number of passengers."
translation | translate_text | Translate text into another language. | text:text "The text." ; target_language:enum(spanish|french|german|italian|japanese|portuguese) "Language to translate into."
translation | detect_language | Tell which language a text is in. | text:text "The text."
pets | log_feeding | Record that a pet was fed. | pet_name:str "The pet's name." ; grams:int[5,1000] "Food amount in grams."
pets | book_vet | Book a vet visit. | pet_name:str "The pet's name." ; date:date "Day, YYYY-MM-DD." ; reason?:text "Why."
parking | reserve_parking | Reserve a parking spot. | garage:str "Garage name." ; date:date "Day, YYYY-MM-DD." ; hours:int[1,24] "How many hours."
sports | get_scores | Get the latest scores of a team. | team:str "Team name."
sports | get_fixtures | List upcoming matches of a league. | league:enum(premier_league|la_liga|serie_a|bundesliga|nba|nfl) "League." ; days?:int[1,30] "How many days ahead."
storage | share_file | Share a file with someone. | path:str "File path." ; email:email "Who to share with." ; can_edit?:bool "Allow editing."
storage | delete_file | Delete a file. | path:str "File path." ; permanent?:bool "Skip the trash."
news | get_headlines | Get top news headlines. | topic:enum(world|business|technology|sports|science|health) "Section." ; count?:int[1,20] "How many headlines."
news | summarize_article | Summarize a web article. | url:str "Link to the article."
garden | set_sprinklers | Turn the garden sprinklers on or off. | zone:enum(front_lawn|back_lawn|vegetable_bed|hedges) "Which sprinkler zone." ; on?:bool "True to start watering, False to stop." ; minutes?:int[1,120] "How long to water, in minutes."
garden | get_soil_reading | Get the latest soil reading. | reading:enum(moisture|temperature|ph) "Kind of reading." ; bed?:enum(front|back|greenhouse) "Which bed; all beds when left out."
car | set_car_climate | Pre-heat or cool the car. | temperature:num[16,28] "Cabin temperature in degrees Celsius." ; seat_heating?:bool "True to heat the seats, False to leave them off." ; defrost?:bool "Also defrost the windows."
car | lock_car | Lock or unlock the car. | locked?:bool "True to lock, False to unlock." ; honk?:bool "Honk once to confirm."
car | get_car_status | Get the car's battery, range or tyre pressure. | metric:enum(battery|range|tyre_pressure|mileage) "What to read."
office | book_meeting_room | Book a meeting room. | room:enum(aurora|borealis|cosmos|delta|echo) "Which room." ; date:date "Day, YYYY-MM-DD." ; start:time "Start, HH:MM." ; minutes?:int[15,240] "Length in minutes." ; video?:bool "Needs the video conference kit."
office | set_desk_height | Raise or lower the standing desk. | height_cm:int[60,125] "Desk height in centimetres." ; memory_slot?:enum(sit|stand|custom) "Save as this preset."
office | print_document | Print a document. | file_name:str "File to print." ; copies?:int[1,50] "Number of copies." ; color?:bool "True for colour, False for black and white." ; double_sided?:bool "Print on both sides."
music | set_speaker | Turn a speaker on or off. | speaker:enum(kitchen|living_room|bedroom|bathroom|patio) "Which speaker." ; on?:bool "True to switch on, False to switch off." ; volume?:int[0,100] "Volume in percent."
music | queue_podcast | Queue the latest episode of a podcast. | podcast:str "Podcast name." ; speed?:enum(normal|fast|slow) "Playback speed." ; download?:bool "Download it for offline listening."
security | arm_alarm | Arm or disarm the house alarm. | armed?:bool "True to arm, False to disarm." ; mode?:enum(away|night|perimeter) "Which alarm mode."
security | get_camera_snapshot | Get the latest snapshot from a camera. | camera:enum(driveway|front_door|backyard|garage) "Which camera." ; night_vision?:bool "Use night vision."
appliances | start_dishwasher | Start the dishwasher. | program:enum(eco|quick|intensive|glass) "Wash program." ; delay_hours?:int[1,12] "Start after this many hours." ; extra_dry?:bool "Add the extra-dry phase."
appliances | set_oven | Preheat the oven. | temperature:int[50,250] "Temperature in degrees Celsius." ; mode?:enum(fan|grill|top_bottom|pizza) "Heating mode." ; timer_minutes?:int[1,240] "Switch off after this many minutes."
appliances | get_fridge_status | Read the fridge's temperature or door state. | sensor:enum(fridge_temperature|freezer_temperature|door|ice_maker) "What to read."
fitness | start_workout | Start tracking a workout. | activity:enum(run|walk|ride|row|hike) "Kind of workout." ; goal_km?:num[0.5,100] "Distance goal in kilometres." ; music?:bool "Start the workout playlist too."
fitness | set_alarm | Set a wake-up alarm. | time:time "Wake-up time, HH:MM." ; days?:enum(weekdays|weekends|every_day|once) "Which days." ; snooze?:bool "True to allow snoozing, False to disable snooze."
it | reset_password | Reset a user's password. | username:person "Whose password." ; notify?:bool "Email the user the reset link." ; force_mfa?:bool "Also require two-factor setup."
it | set_user_access | Grant or revoke someone's access to a system. | username:person "Who." ; system:enum(vpn|wiki|payroll|crm|source_control) "Which system." ; granted?:bool "True to grant, False to revoke."
it | get_device_status | Check whether a device is online. | device:enum(printer|router|nas|projector|badge_reader) "Which device." ; floor?:enum(ground|first|second) "Which floor."
kids | set_screen_time | Set a child's daily screen-time limit. | child:person "Which child." ; minutes:int[0,480] "Daily limit in minutes." ; weekends_only?:bool "Apply on weekends only."
kids | pause_internet | Pause or resume the internet for a device. | device_name:str "The device, e.g. Mia's tablet." ; paused?:bool "True to pause, False to resume." ; minutes?:int[5,600] "Pause for this many minutes."
boat | get_tide | Get the tide times for a harbour. | harbour:str "Harbour name." ; date?:date "Day, YYYY-MM-DD; today when left out."
events | buy_tickets | Buy tickets for an event. | event:str "Event name." ; quantity:int[1,10] "Number of tickets." ; seating?:enum(standing|seated|vip) "Ticket type." ; insurance?:bool "Add refund insurance."
"""


_KIND = re.compile(r"(?P<name>\w+)(?P<opt>\?)?:(?P<kind>[^\s\"]+)\s*(?:\"(?P<desc>[^\"]*)\")?")


def parse_spec(line: str) -> SpecTool:
    """One catalog line -> a `SpecTool`."""
    domain, name, description, params = (part.strip() for part in line.split("|", 3))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for chunk in params.split(" ; "):
        match = _KIND.match(chunk.strip())
        if match is None:
            raise ValueError(f"bad parameter {chunk!r} in {name}")
        schema = _schema(match["kind"])
        if match["desc"]:
            schema["description"] = match["desc"]
        properties[match["name"]] = schema
        if not match["opt"]:
            required.append(match["name"])
    parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return SpecTool(name, description, parameters, domain)


def _schema(kind: str) -> dict[str, Any]:
    bounds = re.fullmatch(r"(int|num)\[([\d.]+),([\d.]+)\]", kind)
    if bounds:
        cast = int if bounds[1] == "int" else float
        low, high = cast(bounds[2]), cast(bounds[3])
        return {
            "type": "integer" if bounds[1] == "int" else "number",
            "minimum": low,
            "maximum": high,
        }
    enum = re.fullmatch(r"enum\((.+)\)", kind)
    if enum:
        return {"type": "string", "enum": enum[1].split("|")}
    shape = re.fullmatch(r"id\((.+)\)", kind)
    if shape:
        return {"type": "string", "examples": [_example_of(shape[1])]}
    simple: dict[str, dict[str, Any]] = {
        "str": {"type": "string"},
        "text": {"type": "string"},
        "person": {"type": "string"},
        "bool": {"type": "boolean"},
        "date": {"type": "string", "format": "date"},
        "time": {"type": "string", "pattern": "^[0-2]\\d:[0-5]\\d$"},
        "email": {"type": "string", "format": "email"},
        "list": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    }
    return dict(simple[kind])


def _example_of(shape: str) -> str:
    rng = random.Random(shape)
    return "".join(
        rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
        if c == "A"
        else str(rng.randint(1, 9))
        if c == "9"
        else c
        for c in shape
    )


# -- variation -------------------------------------------------------------------

_SYNONYMS: dict[str, list[str]] = {
    "city": ["city", "location", "town", "city_name"],
    "location": ["location", "place", "city", "near"],
    "recipient": ["recipient", "to", "contact", "user"],
    "text": ["text", "message", "body", "content"],
    "message": ["message", "text", "details", "note"],
    "query": ["query", "q", "search_term", "keywords"],
    "limit": ["limit", "max_results", "count", "top_n"],
    "count": ["count", "limit", "n", "num_items"],
    "date": ["date", "day", "on_date", "for_date"],
    "time": ["time", "at", "start_time", "time_of_day"],
    "title": ["title", "name", "summary", "subject"],
    "name": ["name", "title", "label"],
    "reason": ["reason", "why", "comment", "note"],
    "note": ["note", "comment", "memo", "description"],
    "items": ["items", "entries", "things", "products"],
    "order_id": ["order_id", "order_number", "order", "order_ref"],
    "ticket_id": ["ticket_id", "ticket", "ticket_number", "id"],
    "amount": ["amount", "value", "sum", "total"],
    "service": ["service", "service_name", "component", "app"],
    "origin": ["origin", "from_place", "start", "source"],
    "destination": ["destination", "to_place", "end", "target"],
    "minutes": ["minutes", "duration_minutes", "length_minutes", "mins"],
    "days": ["days", "num_days", "duration_days", "days_ahead"],
    "path": ["path", "file", "file_path", "filename"],
    "email": ["email", "email_address", "share_with", "user_email"],
    "pet_name": ["pet_name", "pet", "animal_name", "name"],
    "team": ["team", "team_name", "club", "squad"],
    "symbol": ["symbol", "ticker", "stock", "ticker_symbol"],
}
_DESCRIBE: list[Callable[[str], str]] = [
    lambda d: d,
    lambda d: d,
    lambda d: re.sub(r"^(\w+)", lambda m: _third_person(m[1]), d, count=1),
    lambda d: d.rstrip(".") + ". Returns a JSON object.",
    lambda d: d.rstrip(".") + " for the current user.",
]


def _third_person(verb: str) -> str:
    low = verb.lower()
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        word = low[:-1] + "ies"
    elif re.search(r"(s|sh|ch|x|z|o)$", low):
        word = low + "es"
    else:
        word = low + "s"
    return word.capitalize()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _vary(tool: SpecTool, rng: random.Random, prefix: str) -> SpecTool:
    """The same tool as another team would have written it."""
    roll = rng.random()
    name = tool.name
    if roll < 0.15:
        name = _camel(name)
    elif roll < 0.3 and prefix:
        name = f"{prefix}_{name}"
    description = rng.choice(_DESCRIBE)(tool.description)
    properties: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    for key, schema in tool.parameters["properties"].items():
        new = key
        if key in _SYNONYMS and rng.random() < 0.4:
            new = rng.choice(_SYNONYMS[key])
        if new in properties or new in renamed.values():
            new = key
        renamed[key] = new
        schema = dict(schema)
        if "description" in schema and rng.random() < 0.1:
            del schema["description"]  # some teams document nothing
        properties[new] = schema
    parameters = {
        **tool.parameters,
        "properties": properties,
        "required": [renamed[k] for k in tool.parameters["required"]],
    }
    return SpecTool(name, description, parameters, tool.domain)


def catalog_tools() -> list[SpecTool]:
    """Every catalog tool as written."""
    return [parse_spec(line) for line in CATALOG.strip().splitlines() if line.strip()]


def random_modules(
    count: int,
    *,
    seed: int = 0,
    min_tools: int = 2,
    max_tools: int = 6,
    exclude: Sequence[str] = (),
) -> list[SpecModule]:
    """`count` modules of varied tools: mostly one or two domains, sometimes a mix.

    Args:
        count: Modules to make.
        seed: Same seed, same modules.
        min_tools: Fewest tools per module.
        max_tools: Most tools per module.
        exclude: Tool names never to use (e.g. those of a held-out module).
    """
    rng = random.Random(seed)
    tools = [t for t in catalog_tools() if t.name not in set(exclude)]
    by_domain: dict[str, list[SpecTool]] = {}
    for item in tools:
        by_domain.setdefault(item.domain, []).append(item)
    domains = sorted(by_domain)
    modules = []
    for index in range(count):
        size = rng.randint(min_tools, max_tools)
        picked: list[SpecTool] = []
        for domain in rng.sample(domains, k=min(len(domains), rng.choice([1, 2, 2, 3]))):
            picked.extend(rng.sample(by_domain[domain], k=len(by_domain[domain])))
        while len(picked) < size:
            picked.append(rng.choice(tools))
        chosen: dict[str, SpecTool] = {}
        for item in picked:
            if len(chosen) >= size:
                break
            chosen.setdefault(item.name, item)
        prefix = rng.choice(["", "", "acme", "my", "svc", "v2"])
        varied = [_vary(t, rng, prefix) for t in chosen.values()]
        rng.shuffle(varied)
        names = [t.name for t in varied]
        if len(set(names)) != len(names):
            varied = list({t.name: t for t in varied}.values())
        modules.append(SpecModule(f"synthetic_{index:03d}", tuple(varied)))
    return modules
