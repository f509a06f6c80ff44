"""Word pools the natural-request synthesizer draws values and wording from.

Nothing here names a particular tool: the pools are everyday values (people,
places, messages, titles, search terms) and everyday wording (openers,
politeness, chit-chat), so requests for any module read like people wrote
them. Kept apart from `runtime.finetune.natural`, which decides how to use them.
"""

from __future__ import annotations

FIRST_NAMES = [
    "Alice", "Bob", "Carmen", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon",
    "Kemi", "Lars", "Maya", "Nikolai", "Olivia", "Pedro", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe", "Priya", "Tom", "Ana", "Luca",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Garcia", "Okafor", "Tanaka", "Nguyen", "Schmidt", "Rossi", "Kowalski",
    "Silva", "Haddad", "Larsen", "Patel", "Moreau", "Jensen", "Kim", "Novak",
]  # fmt: skip
CITIES = [
    "Paris", "Berlin", "Lagos", "Osaka", "Lima", "Toronto", "Madrid", "Cairo", "Oslo",
    "Lisbon", "Denver", "Nairobi", "Seoul", "Dublin", "Austin", "Prague", "Melbourne",
    "Montreal", "Istanbul", "Warsaw", "Chicago", "Bangkok", "Vienna", "Boston", "Porto",
]  # fmt: skip
COUNTRIES = ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "Mexico", "India", "Spain"]
AIRPORTS = ["JFK", "LHR", "CDG", "SFO", "NRT", "FRA", "AMS", "DXB", "SIN", "ORD", "LIS", "MAD"]
STREETS = ["12 Baker Street", "48 Elm Avenue", "7 Harbour Road", "221 Pine St", "3 Rue Cler"]
DOMAINS = ["example.com", "acme.io", "mail.example.org", "corp.example.net"]
MESSAGES = [
    "running ten minutes late", "The deploy is done", "Don't forget the milk",
    "Can we move the call to Friday?", "Happy birthday!", "I'll be home by 7",
    "Please review the draft before noon", "The package arrived", "Lunch is on me today",
    "Meeting moved to room 4", "Thanks for your help yesterday", "Call me when you land",
    "The server is back up", "Pick up the kids at 3", "See you at the station",
    "Budget approved, go ahead", "Water the plants", "Invoice sent",
    "We need more coffee filters", "Great job on the launch", "Back online now",
    "Remember to bring the charger", "The printer is jammed again", "Dinner at 8?",
    "Left the keys under the mat", "Send me the slides", "Flight delayed by an hour",
]  # fmt: skip
TITLES = [
    "Weekly sync", "Quarterly planning", "Dentist appointment", "Team lunch",
    "Release notes", "Budget review", "Onboarding checklist", "Design review",
    "Yoga class", "Parent-teacher meeting", "Car service", "Sprint retro",
    "Grocery run", "Book club", "Tax paperwork", "Board meeting", "Garden cleanup",
    "Birthday party", "Interview with Maya", "Vendor call",
]  # fmt: skip
NOTES = [
    "bring the signed forms", "customer asked for a callback", "double-check the totals",
    "window seat if possible", "allergic to peanuts", "ring the bell twice",
    "follow up next week", "use the side entrance", "gift wrap please",
    "needs manager approval", "arriving late, around 11pm", "quiet room preferred",
]  # fmt: skip
REASONS = [
    "arrived damaged", "too small", "wrong colour", "changed my mind", "family emergency",
    "double booked", "no longer needed", "found it cheaper elsewhere", "stopped working",
    "plans changed", "duplicate order", "missing parts", "feeling unwell", "weather",
]  # fmt: skip
QUERIES = [
    "wireless headphones", "vegan recipes", "quarterly revenue", "open tickets",
    "python tips", "hiking boots", "late fees", "password reset", "running shoes",
    "best practices for backups", "holiday schedule", "shipping delays", "noise cancelling",
    "standing desk", "refund policy", "sourdough starter", "kids books", "solar panels",
]  # fmt: skip
PATHS = ["notes/todo.txt", "data/sales.csv", "README.md", "src/app.py", "reports/q3.pdf"]
URLS = ["https://example.com/docs", "https://example.org/status", "https://acme.io/pricing"]
WORDS = [
    "alpha", "report", "summary", "budget", "invoice", "meeting", "project", "weekly",
    "draft", "backup", "customer", "sales", "march", "notes", "release", "server",
    "garden", "kitchen", "billing", "support", "payroll", "marketing", "blue", "north",
]  # fmt: skip
# Names of things (a restaurant, a garage, an app, a team): proper-noun-like values.
PROPER_NAMES = [
    "Harbor View", "Blue Fig", "Northside", "Atlas", "Orion", "Maple Court", "Luigi's",
    "Pixel", "Green Lantern", "Sunset", "Riverside", "Nova", "Copper Kettle", "Summit",
    "Lakeside", "Phoenix", "Old Mill", "Bluebird", "Granite", "Willow", "Red Rooster",
    "Cedar Point", "Zephyr", "Golden Gate", "Kestrel", "Polaris", "Juniper", "Beacon",
]  # fmt: skip
NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
]  # fmt: skip
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]  # fmt: skip

# System prompts agents commonly send before the tool list.
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a careful assistant. Use a tool when one fits the request; otherwise answer directly.",
    "You are an assistant for our team. Be brief.",
    "Use the tools when they help. Ask for missing details instead of guessing.",
    "You are a friendly support assistant.",
]  # fmt: skip

# Openers a person puts before the ask; the same pool serves tool and no-tool
# requests so the two cannot be told apart by style.
OPENERS = [
    "Hey,", "Hi!", "Quick one:", "So,", "Okay,", "One more thing:", "Morning!",
    "When you get a chance,", "Hello there.", "Hmm,", "Right,", "Sorry to bother you,",
    "I'm sorting out my week.", "My manager just asked about this.", "Following up on earlier:",
    "Busy day here.", "Before I forget,", "Need a hand with something.", "Got a minute?",
    "Long day.", "I'm back.", "Alright,",
]  # fmt: skip
CLOSERS = ["thanks", "thank you", "thx", "cheers", "please", "ty", "much appreciated"]

# Requests no tool module serves, with a plain answer.
CHIT_CHAT: list[tuple[str, str]] = [
    ("hi", "Hi! What can I do for you?"),
    ("Hello, how's it going?", "Going well, thanks! How can I help?"),
    ("good morning", "Good morning! What do you need today?"),
    ("thanks, that's all", "You're welcome! Have a good day."),
    ("Thank you so much!", "Happy to help!"),
    ("who are you?", "I'm an assistant that can use a few tools for you, or just answer questions."),
    ("what can you do?", "I can use the tools I have been given, or answer questions directly. What do you need?"),
    ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
    ("I'm bored", "How about a short walk, a new podcast, or a puzzle? Or tell me what you like and I'll suggest something."),
    ("ok cool", "Great. Anything else?"),
    ("never mind", "No problem. I'm here if you need anything."),
    ("Write a haiku about autumn leaves.", "Red leaves drift and fall,\nwhispering to the cold ground:\nsummer says goodbye."),
    ("What is the capital of Australia?", "The capital of Australia is Canberra."),
    ("who wrote Pride and Prejudice?", "Jane Austen wrote Pride and Prejudice, published in 1813."),
    ("What's a synonym for quick?", "Fast, rapid, swift or speedy."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("Explain what photosynthesis is in one sentence.", "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen."),
    ("Give me a motivational quote.", "\"The secret of getting ahead is getting started.\" - Mark Twain"),
    ("What does CPU stand for?", "CPU stands for central processing unit."),
    ("Can you recommend a good book?", "Try \"The Martian\" by Andy Weir: funny, clever and hard to put down."),
    ("how do I boil an egg?", "Put the egg in boiling water for about 7 minutes for a firm yolk, then cool it in cold water."),
    ("Translate 'good night' into Spanish.", "\"Good night\" in Spanish is \"buenas noches\"."),
    ("What's the difference between weather and climate?", "Weather is the day-to-day state of the atmosphere; climate is its long-term average."),
    ("Say something nice.", "You're doing great, and it's good to hear from you."),
    ("what year did the first moon landing happen?", "The first crewed moon landing was in 1969."),
    ("Summarize the plot of Romeo and Juliet in two sentences.", "Two young lovers from feuding families in Verona marry in secret. A chain of misunderstandings ends with both taking their own lives, which finally reconciles their families."),
    ("Is a tomato a fruit?", "Botanically, yes: a tomato is a fruit, though it is cooked like a vegetable."),
    ("What's the boiling point of water?", "Water boils at 100 degrees Celsius at sea level."),
    ("you're awesome", "Thank you! Let me know if there's anything else I can do."),
    ("Suggest a name for a golden retriever puppy.", "How about Sunny, Maple or Biscuit?"),
]  # fmt: skip

# Answers to a request that names a tool's topic but asks for nothing it does.
NEAR_MISS_ANSWERS = [
    "That's a general question rather than something my tools do. In short, it depends on your situation; tell me the specifics and I can help.",
    "None of my tools answers that, but I'm happy to talk it through: what would you like to know exactly?",
    "I can't do that with the tools I have. Generally speaking, it's worth checking a trusted source for the details.",
    "That isn't something I can look up or change with my tools. If you want, give me the details and I'll help where I can.",
]  # fmt: skip
