"""The simulated shop's product world: categories, words, prices and seasons.

Products of one category share nouns, modifiers and feature sentences, so
similar products read alike and a text model can find them; seasons and return
rates differ by category so demand and returns have structure to learn.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategorySpec:
    name: str
    share: float  # share of the catalog
    nouns: dict[str, float]  # noun -> base price
    modifiers: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    brands: tuple[str, ...]  # budget, mid, premium (cycled)
    monthly_season: tuple[float, ...]  # Jan..Dec demand multipliers
    return_rate: float
    consumable: bool = False


ADJECTIVES = ("classic", "compact", "everyday", "premium", "lightweight", "modern", "handmade", "eco", "deluxe", "essential")

CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "kitchen",
        0.12,
        {"chef's knife": 45, "frying pan": 38, "cutting board": 22, "saucepan": 42, "mixing bowl set": 28, "knife sharpener": 19, "spatula set": 14},
        ("stainless steel", "cast iron", "bamboo", "non-stick", "ceramic"),
        ("Heats evenly and cleans up in seconds.", "Dishwasher safe and built to last.", "Ergonomic handle for a comfortable grip.",
         "Sharp, balanced and easy to control.", "Works on gas, electric and induction hobs.", "Food-safe materials with no PFOA."),
        ("weeknight dinners", "home cooks", "meal prep", "family kitchens"),
        ("KitchenPro", "Cucina", "Forgeline"),
        (1.0, 0.9, 0.9, 0.9, 0.95, 0.9, 0.9, 0.95, 1.0, 1.05, 1.2, 1.6),
        0.04,
    ),
    CategorySpec(
        "coffee & tea",
        0.09,
        {"whole bean coffee": 14, "ground coffee": 11, "green tea": 8, "herbal tea": 7, "espresso pods": 9, "chai blend": 10},
        ("single-origin", "organic", "dark roast", "decaf", "fair-trade"),
        ("Roasted in small batches for a rich, smooth flavour.", "Notes of chocolate, caramel and citrus.", "Resealable bag keeps it fresh.",
         "Ethically sourced from family farms.", "Brews a bold cup without bitterness."),
        ("morning coffee", "afternoon tea breaks", "espresso lovers", "cosy evenings"),
        ("Bean & Leaf", "Roastery Co", "Highland Estate"),
        (1.15, 1.05, 1.0, 0.95, 0.9, 0.85, 0.85, 0.9, 1.0, 1.05, 1.1, 1.2),
        0.01,
        consumable=True,
    ),
    CategorySpec(
        "personal care",
        0.09,
        {"shampoo": 9, "body wash": 8, "face moisturiser": 18, "toothpaste": 4, "deodorant": 6, "hand cream": 7},
        ("fragrance-free", "organic", "sensitive skin", "refillable", "vegan"),
        ("Gentle formula for daily use.", "Dermatologically tested and cruelty free.", "Leaves skin soft and hydrated.",
         "Plastic-free packaging you can recycle.", "A fresh, clean scent that lasts all day."),
        ("daily routines", "sensitive skin", "travel bags", "the whole family"),
        ("PureCare", "Botanica", "Lumiere"),
        (1.05, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.2),
        0.02,
        consumable=True,
    ),
    CategorySpec(
        "home decor",
        0.10,
        {"scented candle": 16, "throw pillow": 24, "wall mirror": 65, "photo frame": 15, "table lamp": 48, "vase": 26},
        ("linen", "glass", "oak", "velvet", "brass"),
        ("Adds a warm, inviting touch to any room.", "Minimalist design that fits every style.", "Soft ambient light for relaxing evenings.",
         "Carefully finished by hand.", "Makes a thoughtful housewarming gift."),
        ("living rooms", "bedrooms", "cosy corners", "housewarming gifts"),
        ("Nordhaven", "Maison Claire", "Atelier Oak"),
        (0.85, 0.85, 0.9, 0.95, 0.95, 0.9, 0.9, 0.9, 1.0, 1.1, 1.3, 1.6),
        0.06,
    ),
    CategorySpec(
        "garden",
        0.08,
        {"garden hose": 30, "pruning shears": 21, "planter pot": 18, "seed kit": 9, "solar lantern": 16, "watering can": 15},
        ("galvanised", "terracotta", "weatherproof", "expandable", "recycled plastic"),
        ("Tough enough for every season outdoors.", "Rust resistant and easy to store.", "Grow fresh herbs and flowers with ease.",
         "UV stable so it never fades in the sun.", "Lightweight yet sturdy for daily gardening."),
        ("balcony gardens", "vegetable patches", "patios", "weekend gardeners"),
        ("GreenThumb", "Terra", "Verdant Works"),
        (0.4, 0.5, 0.9, 1.4, 1.7, 1.6, 1.4, 1.1, 0.8, 0.6, 0.5, 0.5),
        0.05,
    ),
    CategorySpec(
        "electronics accessories",
        0.10,
        {"wireless earbuds": 59, "phone charger": 19, "power bank": 29, "bluetooth speaker": 45, "usb-c cable": 9, "laptop stand": 35},
        ("fast-charging", "noise-cancelling", "waterproof", "aluminium", "compact"),
        ("Long battery life and quick charging.", "Pairs instantly over Bluetooth 5.3.", "Crisp sound with deep bass.",
         "Works with all USB-C phones and laptops.", "Slim design that slips into any bag."),
        ("commuters", "home offices", "travel", "students"),
        ("Voltix", "Sonara", "Aurum Audio"),
        (0.95, 0.85, 0.85, 0.85, 0.9, 0.9, 0.9, 1.0, 1.05, 1.0, 1.3, 1.7),
        0.09,
    ),
    CategorySpec(
        "sports & outdoors",
        0.08,
        {"yoga mat": 28, "water bottle": 17, "running belt": 14, "resistance bands": 16, "hiking backpack": 69, "dumbbell set": 55},
        ("non-slip", "insulated", "reflective", "recycled", "adjustable"),
        ("Built for training hard every day.", "Keeps drinks cold for 24 hours.", "Sweat resistant and easy to clean.",
         "Light enough to take on every trail.", "Adjustable fit for every body."),
        ("home workouts", "runners", "hikers", "gym sessions"),
        ("Stride", "Summit Gear", "Apex Athletic"),
        (1.6, 1.3, 1.1, 1.0, 1.0, 1.0, 0.95, 0.9, 0.95, 0.85, 0.8, 0.8),
        0.07,
    ),
    CategorySpec(
        "toys & games",
        0.08,
        {"building blocks": 32, "board game": 27, "jigsaw puzzle": 16, "plush toy": 14, "science kit": 29, "card game": 11},
        ("wooden", "educational", "family", "1000-piece", "cuddly"),
        ("Hours of screen-free fun for all ages.", "Encourages creativity and problem solving.", "Safe, non-toxic materials tested for kids.",
         "Easy rules, endless replay value.", "A favourite gift for birthdays and holidays."),
        ("family game nights", "kids aged 6+", "rainy days", "birthday gifts"),
        ("PlayNest", "Brightmind", "Tinker & Co"),
        (0.6, 0.6, 0.7, 0.75, 0.75, 0.75, 0.8, 0.8, 0.85, 1.0, 1.6, 2.6),
        0.04,
    ),
    CategorySpec(
        "clothing",
        0.10,
        {"t-shirt": 19, "hoodie": 45, "wool socks": 12, "rain jacket": 79, "scarf": 24, "beanie": 16},
        ("organic cotton", "merino wool", "recycled polyester", "slim-fit", "oversized"),
        ("Soft, breathable fabric that keeps its shape.", "Machine washable and made to last.", "True to size with a relaxed fit.",
         "Warm without the bulk.", "Responsibly made from sustainable fibres."),
        ("everyday wear", "cold mornings", "weekends", "layering"),
        ("Basics Lab", "Northline", "Fjord & Field"),
        (1.1, 0.85, 0.9, 0.95, 0.95, 0.9, 0.9, 0.95, 1.1, 1.2, 1.3, 1.4),
        0.20,
    ),
    CategorySpec(
        "pet supplies",
        0.07,
        {"dog food": 24, "cat litter": 12, "dog leash": 15, "cat scratcher": 22, "pet bed": 39, "dog treats": 7},
        ("grain-free", "natural", "washable", "orthopedic", "clumping"),
        ("Made with real ingredients pets love.", "Durable enough for the most playful pets.", "Vet recommended for daily use.",
         "Odour control that really works.", "Soft and washable for easy care."),
        ("dogs", "cats", "puppies", "senior pets"),
        ("Pawsome", "Whisker & Tail", "Canis Select"),
        (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.2),
        0.03,
        consumable=True,
    ),
    CategorySpec(
        "stationery",
        0.06,
        {"notebook": 9, "fountain pen": 29, "planner": 18, "sticky notes": 5, "pencil set": 8, "desk organiser": 21},
        ("dotted", "refillable", "recycled paper", "leather-bound", "pastel"),
        ("Smooth paper that never bleeds through.", "Organise your week at a glance.", "Writes beautifully from the first stroke.",
         "A tidy desk for a clear mind.", "Compact enough for every bag."),
        ("students", "journaling", "the office", "back to school"),
        ("Papercraft", "Inkwell", "Scriptorium"),
        (1.4, 1.0, 0.9, 0.85, 0.8, 0.8, 0.9, 1.3, 1.5, 1.0, 0.95, 1.2),
        0.03,
    ),
    CategorySpec(
        "beauty",
        0.03,
        {"lipstick": 17, "mascara": 14, "nail polish": 8, "makeup brush set": 25, "perfume": 55},
        ("long-lasting", "matte", "vegan", "shimmer", "hypoallergenic"),
        ("Rich colour that lasts all day.", "Lightweight formula that feels like nothing.", "Cruelty free and vegan friendly.",
         "A signature scent with floral and woody notes.", "Professional results at home."),
        ("everyday looks", "evenings out", "gift sets", "sensitive eyes"),
        ("Glow Theory", "Velour", "Maison Rose"),
        (0.9, 1.1, 0.9, 0.9, 0.95, 0.95, 0.9, 0.9, 0.95, 1.0, 1.3, 1.6),
        0.06,
    ),
)

BRAND_TIER_MULTIPLIER = (0.7, 1.0, 1.6)

COUNTRIES = ("United Kingdom", "Germany", "France", "Netherlands", "Ireland", "Spain", "Belgium", "Sweden", "Italy", "Poland")
COUNTRY_WEIGHTS = (0.45, 0.12, 0.1, 0.07, 0.06, 0.05, 0.04, 0.04, 0.04, 0.03)

CHANNELS = ("web", "app", "email", "sms", "ads")

REVIEW_TEMPLATES: dict[int, tuple[str, ...]] = {
    1: (
        "Terrible {noun}. It broke after a few days and I want my money back.",
        "Very poor quality, the {noun} looks nothing like the photos. Awful.",
        "Worst purchase this year. The {noun} stopped working almost immediately.",
        "Cheap and flimsy {noun}, a complete waste of money. Do not buy.",
    ),
    2: (
        "Disappointing {noun}. The quality is poor for the price.",
        "Not great. The {noun} feels cheap and arrived damaged.",
        "I expected more from this {noun}; it is uncomfortable and badly made.",
    ),
    3: (
        "The {noun} is okay. Does the job but nothing special.",
        "Average {noun}, fine for the price but the finish could be better.",
        "Decent {noun}, though delivery was slow and it feels a bit basic.",
    ),
    4: (
        "Good {noun}, works well and looks nice. Would buy again.",
        "Really happy with this {noun}, solid quality for the price.",
        "Nice {noun}, arrived quickly and does exactly what I needed.",
    ),
    5: (
        "Excellent {noun}! Great quality and I love it. Highly recommend.",
        "Absolutely perfect {noun}, beautifully made and works brilliantly.",
        "Best {noun} I have owned. Fantastic value, five stars.",
        "Love this {noun}! Superb quality and fast delivery.",
    ),
}
