"""Keyword taxonomy for product titles that come without a category.

Online Retail has no categories, and "first word of the title" mostly yields
colours and sizes ("RED", "SET", "JUMBO"). An ordered list of keyword rules
gives stable, explainable buckets instead: the first rule with a keyword in the
title decides. Seasonal buckets come first (they drive campaign timing), then a
few unambiguous product nouns, then broad buckets from specific to generic
(storage and home decor last). A category may appear in several rules.
Keywords match whole words, with an optional plural "S"/"ES", ignoring case.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

OTHER = "other"

# Ordered rules: (category, "KEYWORD|KEYWORD|..."); the first rule that matches wins.
RULES: tuple[tuple[str, str], ...] = (
    (
        "christmas",
        "CHRISTMAS|XMAS|ADVENT|SANTA|REINDEER|SNOWFLAKE|SNOWMAN|NATIVITY|BAUBLE|STOCKING|"
        "NOEL|TREE DECORATION|CHRISTMAS TREE",
    ),
    (
        "easter",
        "EASTER|CHICK|BUNNY|BUNNIES",
    ),
    # Unambiguous product nouns next, so a theme word elsewhere in the title
    # ("GLASS BEADS BRACELET", "DINER WALL CLOCK") cannot pull the item away.
    (
        "jewellery & accessories",
        "EARRING|NECKLACE|BRACELET|BROOCH|KEY RING|KEYRING|PHONE CHARM|PASSPORT COVER|"
        "LUGGAGE TAG|CARD WALLET|HAIRSLIDE|HAIR CLIP",
    ),
    (
        "textiles",
        "HOT WATER BOTTLE|CUSHION COVER|FILLER PAD|FABRIC MIRROR",
    ),
    (
        "home decor",
        "CLOCK|DRAWER KNOB|BLOCK LETTERS|WOOD LETTERS|BLOCK WORD",
    ),
    (
        "kitchen & dining",
        "TEASPOON|PETIT FOUR|CAKE CASES|CUP OF TEA",
    ),
    (
        "garden",
        "KNEELING PAD|KNEELING MAT|GARDEN TOOL",
    ),
    (
        "party",
        "PARTY|BALLOON|BUNTING|GARLAND|CONFETTI|BANNER|PAPER CHAIN|PINATA|DOILEY|DOILIES|"
        "DOILY|PAPER STRAW|STRAWS|PARTY CONES|BIRTHDAY|FANCY DRESS|PARASOL",
    ),
    (
        "candles & lighting",
        "CANDLE|CANDLES|T-LIGHT|T-LIGHTS|TEALIGHT|TLIGHT|LANTERN|LIGHT|LIGHTS|LAMP|LAMPSHADE|"
        "LED|CHANDELIER|TORCH|INCENSE|OIL BURNER|CANDLEHOLDER|CANDLESTICK|NIGHTLIGHT|MATCHES",
    ),
    (
        "bath & beauty",
        "BATH|BATHROOM|SOAP|TOILET|WASHBAG|SPONGE|PLASTERS|TISSUES|TOOTHBRUSH|LIP GLOSS|NAIL|"
        "COSMETIC|MAKE UP|SHOWER|FIRST AID|HAND CREAM|TOILETRY",
    ),
    (
        "kitchen & dining",
        "MUG|CUP|CUPS|SAUCER|TEACUP|TEAPOT|PLATE|BOWL|JUG|CUTLERY|SPOON|FORK|KNIFE|NAPKIN|"
        "BAKING|CAKE|CAKESTAND|CUTTER|MOULD|LUNCH BOX|JAM|JAR|RECIPE|TEA|COFFEE|KITCHEN|"
        "APRON|OVEN|TRAY|DISH|BEAKER|PAN|PANTRY|BREAD|BISCUIT|SUGAR|MILK|SCALES|MEASURING|"
        "CHOPSTICK|EGG CUP|TUMBLER|TIFFIN|PICNIC|SNACK|POPCORN|PLACEMAT|COASTER|TOAST|FOOD|"
        "DINNER|BREAKFAST|CHOPPING BOARD|LOLLY|JELLY|SPATULA|WHISK|ROLLING PIN|DRINKING|"
        "MILKSHAKE GLASS|SHOT GLASS|WINE GLASS|BOTTLE OPENER|WINE|BEER|COOKIE|CUPCAKE|BUTTER|"
        "FRUIT BOWL|SALAD|COLANDER|TEATIME|PUDDING|PIE|SCONE|GINGERBREAD|CAFETIERE|FLASK|"
        "FEEDING|BOTTLE|GRINDER|KETTLE|EGG|STRAW|PITCHER|CHEESE",
    ),
    (
        "bags",
        "BAG|SHOPPER|TOTE|HANDBAG|RUCKSACK|BACKPACK|SATCHEL",
    ),
    (
        "stationery & wrap",
        "CARD|CARDS|WRAP|WRAPPING|PAPER|NOTEBOOK|PENCIL|PEN|SKETCHBOOK|STICKER|ENVELOPE|"
        "NOTEPAD|NOTE|DIARY|CALENDAR|JOURNAL|ERASER|RUBBER|RULER|CRAYON|CHALK|GIFT TAG|TAG|"
        "RIBBON|REEL|BOOK|LETTER|WRITING|STAMP|TAPE|ORGANISER|POSTCARD|GIFTWRAP|BOOKMARK|"
        "MEMO|PAD|STATIONERY|SCISSORS",
    ),
    (
        "jewellery & accessories",
        "NECKLACE|NECKLAC|BRACELET|EARRING|RING|CHARM|BROOCH|HAIR|HAIRCLIP|CLIP|SLIDE|BANGLE|"
        "DIAMANTE|BEADED|PURSE|WALLET|KEYRING|KEY RING|FOB|UMBRELLA|SCARF|SUNGLASSES|WATCH|"
        "PASSPORT|COMPACT MIRROR|HAIRBAND|PENDANT|JEWELLERY|JEWEL|BEAD|HAT|GLOVES|"
        "POCKET MIRROR|LUGGAGE TAG|CARD HOLDER|SEQUIN",
    ),
    (
        "toys & games",
        "TOY|GAME|JIGSAW|PUZZLE|DOLL|SKIPPING ROPE|PLAYHOUSE|DOMINOES|DOMINO|PLAYING CARDS|"
        "SNAKES|KITE|MARBLES|HARMONICA|YO-YO|SPINNING TOP|BALL|BUBBLES|TEDDY|COLOURING|"
        "STENCIL|PAINT SET|TRAIN|DINOSAUR|MAGIC|SOLDIER|ROCKING HORSE|PUPPET|FELTCRAFT|"
        "SPACEBOY|NINJA|CIRCUS|SPINNING|PLAY|BINGO|LUDO|KIDS|CHILDS|CHILDRENS|RACING CAR|"
        "WHISTLE|MASK|KNITTING NANCY|CRAFT|SEWING|SCRAP|FLYING",
    ),
    (
        "garden",
        "GARDEN|WATERING CAN|PLANT|PLANTER|SEED|BIRD FEEDER|BIRDHOUSE|BIRD HOUSE|HERB MARKER|"
        "HERB|GNOME|TRUG|GARDENERS|KNEELING|SHED|FLOWER POT|HEN HOUSE|POT|WINDMILL|"
        "BIRD TABLE|WATERING|BIRDCAGE|WIND CHIME|CHIME|PEG|PEGS|WASHING LINE",
    ),
    (
        "textiles",
        "CUSHION|COVER|THROW|BLANKET|TOWEL|HOT WATER BOTTLE|QUILT|TABLECLOTH|FABRIC|FELT|"
        "KNITTED|CROCHET|PILLOW|HAND WARMER|HOTTIE|CURTAIN|RUG|BEDSPREAD|EIDERDOWN|SLIPPERS|"
        "WARMER|PATCHES|COTTON|LACE",
    ),
    (
        "storage",
        "BOX|BOXES|TIN|TINS|BASKET|STORAGE|DRAWER|CHEST|CABINET|CRATE|HAMPER|CASE|BIN|RACK|"
        "TRUNK|CONTAINER|TIDY|MONEY BANK|HOLDER|CADDY|BUCKET|POUFFE|SHELF|DRAWERS",
    ),
    (
        "home decor",
        "SIGN|FRAME|CLOCK|MIRROR|HEART|DECORATION|ORNAMENT|WALL|PLAQUE|VASE|DOORMAT|DOORSTOP|"
        "HOOK|HANGER|KNOB|PICTURE|PHOTO|CHALKBOARD|BLACKBOARD|WREATH|HANGING|MAGNET|FLOWER|"
        "FLOWERS|BLOCK WORD|LETTERS|DOOR|STAND|ART|SCULPTURE|FIGURE|STATUE|CANVAS|BIRD|"
        "BUTTERFLY|STAR|BOTTLE|POSTER|CHANDELIER|BELL|FEATHER|STICKS|DIAMOND|CRYSTAL|"
        "BILLBOARD|CHAIR|TABLE|STOOL|SLATE|FAN|GLOBE|PARISIENNE|GIFT SET",
    ),
)

CATEGORIES: tuple[str, ...] = (*dict.fromkeys(name for name, _ in RULES), OTHER)


def _pattern(keywords: str) -> re.Pattern[str]:
    """Whole-word alternatives (optional plural), longest first so phrases win."""
    words = sorted({re.escape(k.strip()) for k in keywords.split("|")}, key=len, reverse=True)
    return re.compile(rf"(?<![A-Z])(?:{'|'.join(words)})(?:S|ES)?(?![A-Z])")


_PATTERNS = tuple((name, _pattern(words)) for name, words in RULES)


def categorize(titles: pd.Series) -> pd.Series:
    """Category of each title: the first taxonomy bucket with a keyword hit, else `other`."""
    upper = titles.fillna("").astype(str).str.upper()
    hits = [upper.str.contains(pattern).to_numpy(dtype=bool) for _, pattern in _PATTERNS]
    names = [name for name, _ in _PATTERNS]
    return pd.Series(np.select(hits, names, default=OTHER), index=titles.index, dtype=object)
