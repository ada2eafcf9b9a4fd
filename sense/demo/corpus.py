"""A parallel corpus in six languages, generated from a small hand-written grammar.

Every sentence is a *meaning*: a subject, a verb with its object, an optional
place and an optional time.  Each language renders a meaning with its own
lexicon and word order, so sentence ``i`` in French, German, Spanish, Italian
and Russian is a translation of sentence ``i`` in English::

    The teacher reads a red book in the park every morning.
    Le professeur lit un livre rouge dans le parc chaque matin.
    Jeden Morgen liest der Lehrer ein rotes Buch im Park.
    El profesor lee un libro rojo en el parque cada mañana.
    Il professore legge un libro rosso nel parco ogni mattina.
    Каждое утро учитель читает красную книгу в парке.

The grammar is kept small enough to be right by construction:

- subjects are singular, in the nominative, and written out as whole phrases;
  verbs are in the third person singular of the present tense, which agrees
  with no gender in any of the six languages;
- objects are inanimate nouns (Russian animate accusatives would differ) in one
  of three forms: with the indefinite article ("a book"), with a colour
  ("a red book"), or with a number from two to six ("three books").  Gender
  agreement of articles and adjectives, the German accusative, and the Russian
  numeral government (два + genitive singular, пять + genitive plural) are
  looked up in explicit per-noun tables, never guessed from spelling;
- places and times are fixed phrases written out per language.

No two meanings share a sentence in any language (articles are always
indefinite, so Russian, which has none, never merges two English sentences).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

LANGUAGES = ("en", "fr", "de", "es", "it", "ru")
"""Language codes of the corpus, in column order (ISO 639-1, also espeak-ng voices)."""

NUMBERS = (2, 3, 4, 5, 6)
"""Quantities an object can take besides "a"/"an"."""

# ---------------------------------------------------------------------------
# Lexicon.  One row per entry, one column per language in LANGUAGES order.
# The tables keep one entry per line so that a row reads as a translation.
# ---------------------------------------------------------------------------

# fmt: off

SUBJECTS = (
    ("the man", "l'homme", "der Mann", "el hombre", "l'uomo", "мужчина"),
    ("the woman", "la femme", "die Frau", "la mujer", "la donna", "женщина"),
    ("the boy", "le garçon", "der Junge", "el chico", "il ragazzo", "мальчик"),
    ("the girl", "la fille", "das Mädchen", "la chica", "la ragazza", "девочка"),
    ("the teacher", "le professeur", "der Lehrer", "el profesor", "il professore", "учитель"),
    ("the doctor", "le médecin", "der Arzt", "el médico", "il medico", "врач"),
    ("the cook", "le cuisinier", "der Koch", "el cocinero", "il cuoco", "повар"),
    ("the student", "l'étudiant", "der Student", "el estudiante", "lo studente", "студент"),
    ("my mother", "ma mère", "meine Mutter", "mi madre", "mia madre", "моя мама"),
    ("my father", "mon père", "mein Vater", "mi padre", "mio padre", "мой отец"),
    ("my sister", "ma sœur", "meine Schwester", "mi hermana", "mia sorella", "моя сестра"),
    ("my brother", "mon frère", "mein Bruder", "mi hermano", "mio fratello", "мой брат"),
    ("our neighbour", "notre voisin", "unser Nachbar", "nuestro vecino", "il nostro vicino", "наш сосед"),
    ("the old man", "le vieil homme", "der alte Mann", "el anciano", "il vecchio", "старик"),
    ("the little girl", "la petite fille", "das kleine Mädchen", "la niña", "la bambina", "маленькая девочка"),
    ("the farmer", "l'agriculteur", "der Bauer", "el granjero", "il contadino", "фермер"),
    ("the artist", "l'artiste", "der Künstler", "el artista", "l'artista", "художник"),
    ("the driver", "le chauffeur", "der Fahrer", "el conductor", "l'autista", "водитель"),
    ("the grandmother", "la grand-mère", "die Großmutter", "la abuela", "la nonna", "бабушка"),
    ("the baker", "le boulanger", "der Bäcker", "el panadero", "il fornaio", "пекарь"),
)
"""Subjects, in the nominative singular."""

PLACES = (
    ("in the park", "dans le parc", "im Park", "en el parque", "nel parco", "в парке"),
    ("in the kitchen", "dans la cuisine", "in der Küche", "en la cocina", "in cucina", "на кухне"),
    ("at home", "à la maison", "zu Hause", "en casa", "a casa", "дома"),
    ("in the garden", "dans le jardin", "im Garten", "en el jardín", "in giardino", "в саду"),
    ("at school", "à l'école", "in der Schule", "en la escuela", "a scuola", "в школе"),
    ("in the city", "en ville", "in der Stadt", "en la ciudad", "in città", "в городе"),
    ("at the market", "au marché", "auf dem Markt", "en el mercado", "al mercato", "на рынке"),
    ("on the train", "dans le train", "im Zug", "en el tren", "sul treno", "в поезде"),
    ("at the station", "à la gare", "am Bahnhof", "en la estación", "alla stazione", "на вокзале"),
    ("in the office", "au bureau", "im Büro", "en la oficina", "in ufficio", "в офисе"),
    ("by the sea", "au bord de la mer", "am Meer", "junto al mar", "al mare", "у моря"),
    ("in the library", "à la bibliothèque", "in der Bibliothek", "en la biblioteca", "in biblioteca", "в библиотеке"),
)
"""Place adverbials."""

TIMES = (
    ("every morning", "chaque matin", "jeden Morgen", "cada mañana", "ogni mattina", "каждое утро"),
    ("every day", "chaque jour", "jeden Tag", "cada día", "ogni giorno", "каждый день"),
    ("every week", "chaque semaine", "jede Woche", "cada semana", "ogni settimana", "каждую неделю"),
    ("on Sundays", "le dimanche", "sonntags", "los domingos", "la domenica", "по воскресеньям"),
    ("on Saturdays", "le samedi", "samstags", "los sábados", "il sabato", "по субботам"),
    ("in summer", "en été", "im Sommer", "en verano", "d'estate", "летом"),
    ("in winter", "en hiver", "im Winter", "en invierno", "d'inverno", "зимой"),
    ("at night", "la nuit", "nachts", "por la noche", "di notte", "ночью"),
)
"""Time adverbials (habitual, so that the simple present is right everywhere)."""

NUMBER_WORDS = {
    "en": {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"},
    "fr": {2: "deux", 3: "trois", 4: "quatre", 5: "cinq", 6: "six"},
    "de": {2: "zwei", 3: "drei", 4: "vier", 5: "fünf", 6: "sechs"},
    "es": {2: "dos", 3: "tres", 4: "cuatro", 5: "cinco", 6: "seis"},
    "it": {2: "due", 3: "tre", 4: "quattro", 5: "cinque", 6: "sei"},
    # Russian "two" agrees in gender; the others do not (in the inanimate accusative).
    "ru": {2: {"m": "два", "n": "два", "f": "две"}, 3: "три", 4: "четыре", 5: "пять", 6: "шесть"},
}
"""Numerals per language.  Russian 2-4 govern the genitive singular, 5-6 the genitive plural."""


class Colour(NamedTuple):
    """A colour adjective with its agreeing forms in each language."""

    en: str
    fr: tuple[str, str]  # (masculine, feminine), after the noun
    de: str  # stem; the mixed-declension accusative ending is added by gender
    es: tuple[str, str]  # (masculine, feminine), after the noun
    it: tuple[str, str]  # (masculine, feminine), after the noun
    ru: tuple[str, str, str]  # accusative inanimate (masculine, feminine, neuter), before the noun


COLOURS = (
    Colour("red", ("rouge", "rouge"), "rot", ("rojo", "roja"), ("rosso", "rossa"), ("красный", "красную", "красное")),
    Colour("blue", ("bleu", "bleue"), "blau", ("azul", "azul"), ("blu", "blu"), ("синий", "синюю", "синее")),
    Colour("green", ("vert", "verte"), "grün", ("verde", "verde"), ("verde", "verde"), ("зелёный", "зелёную", "зелёное")),
    Colour("black", ("noir", "noire"), "schwarz", ("negro", "negra"), ("nero", "nera"), ("чёрный", "чёрную", "чёрное")),
    Colour("white", ("blanc", "blanche"), "weiß", ("blanco", "blanca"), ("bianco", "bianca"), ("белый", "белую", "белое")),
    Colour("yellow", ("jaune", "jaune"), "gelb", ("amarillo", "amarilla"), ("giallo", "gialla"), ("жёлтый", "жёлтую", "жёлтое")),
)
"""Colours.  All English colours start with a consonant, so they always take "a"."""


class Noun(NamedTuple):
    """An inanimate object noun with the forms each language needs.

    Genders are ``"m"``, ``"f"`` or ``"n"``.  Multi-word entries ("cup of coffee")
    are whole phrases whose head noun carries number and gender.
    """

    en: tuple[str, str, str]  # (indefinite article, singular, plural)
    fr: tuple[str, str, str]  # (gender, singular, plural)
    de: tuple[str, str, str]  # (gender, singular, plural)
    es: tuple[str, str, str]  # (gender, singular, plural)
    it: tuple[str, str, str, str]  # (gender, indefinite article, singular, plural)
    ru: tuple[str, str, str, str]  # (gender, accusative sg., genitive sg., genitive pl.)
    colourable: bool = False


NOUNS = {
    "book": Noun(("a", "book", "books"), ("m", "livre", "livres"), ("n", "Buch", "Bücher"), ("m", "libro", "libros"), ("m", "un", "libro", "libri"), ("f", "книгу", "книги", "книг"), True),
    "letter": Noun(("a", "letter", "letters"), ("f", "lettre", "lettres"), ("m", "Brief", "Briefe"), ("f", "carta", "cartas"), ("f", "una", "lettera", "lettere"), ("n", "письмо", "письма", "писем")),
    "newspaper": Noun(("a", "newspaper", "newspapers"), ("m", "journal", "journaux"), ("f", "Zeitung", "Zeitungen"), ("m", "periódico", "periódicos"), ("m", "un", "giornale", "giornali"), ("f", "газету", "газеты", "газет")),
    "postcard": Noun(("a", "postcard", "postcards"), ("f", "carte postale", "cartes postales"), ("f", "Postkarte", "Postkarten"), ("f", "postal", "postales"), ("f", "una", "cartolina", "cartoline"), ("f", "открытку", "открытки", "открыток")),
    "apple": Noun(("an", "apple", "apples"), ("f", "pomme", "pommes"), ("m", "Apfel", "Äpfel"), ("f", "manzana", "manzanas"), ("f", "una", "mela", "mele"), ("n", "яблоко", "яблока", "яблок")),
    "orange": Noun(("an", "orange", "oranges"), ("f", "orange", "oranges"), ("f", "Orange", "Orangen"), ("f", "naranja", "naranjas"), ("f", "un'", "arancia", "arance"), ("m", "апельсин", "апельсина", "апельсинов")),
    "pear": Noun(("a", "pear", "pears"), ("f", "poire", "poires"), ("f", "Birne", "Birnen"), ("f", "pera", "peras"), ("f", "una", "pera", "pere"), ("f", "грушу", "груши", "груш")),
    "banana": Noun(("a", "banana", "bananas"), ("f", "banane", "bananes"), ("f", "Banane", "Bananen"), ("m", "plátano", "plátanos"), ("f", "una", "banana", "banane"), ("m", "банан", "банана", "бананов")),
    "cake": Noun(("a", "cake", "cakes"), ("m", "gâteau", "gâteaux"), ("m", "Kuchen", "Kuchen"), ("m", "pastel", "pasteles"), ("f", "una", "torta", "torte"), ("m", "торт", "торта", "тортов")),
    "coffee": Noun(("a", "cup of coffee", "cups of coffee"), ("f", "tasse de café", "tasses de café"), ("f", "Tasse Kaffee", "Tassen Kaffee"), ("f", "taza de café", "tazas de café"), ("f", "una", "tazza di caffè", "tazze di caffè"), ("f", "чашку кофе", "чашки кофе", "чашек кофе")),
    "tea": Noun(("a", "cup of tea", "cups of tea"), ("f", "tasse de thé", "tasses de thé"), ("f", "Tasse Tee", "Tassen Tee"), ("f", "taza de té", "tazas de té"), ("f", "una", "tazza di tè", "tazze di tè"), ("f", "чашку чая", "чашки чая", "чашек чая")),
    "water": Noun(("a", "glass of water", "glasses of water"), ("m", "verre d'eau", "verres d'eau"), ("n", "Glas Wasser", "Gläser Wasser"), ("m", "vaso de agua", "vasos de agua"), ("m", "un", "bicchiere d'acqua", "bicchieri d'acqua"), ("m", "стакан воды", "стакана воды", "стаканов воды")),
    "milk": Noun(("a", "glass of milk", "glasses of milk"), ("m", "verre de lait", "verres de lait"), ("n", "Glas Milch", "Gläser Milch"), ("m", "vaso de leche", "vasos de leche"), ("m", "un", "bicchiere di latte", "bicchieri di latte"), ("m", "стакан молока", "стакана молока", "стаканов молока")),
    "juice": Noun(("a", "glass of juice", "glasses of juice"), ("m", "verre de jus", "verres de jus"), ("n", "Glas Saft", "Gläser Saft"), ("m", "vaso de zumo", "vasos de zumo"), ("m", "un", "bicchiere di succo", "bicchieri di succo"), ("m", "стакан сока", "стакана сока", "стаканов сока")),
    "car": Noun(("a", "car", "cars"), ("f", "voiture", "voitures"), ("n", "Auto", "Autos"), ("m", "coche", "coches"), ("f", "una", "macchina", "macchine"), ("f", "машину", "машины", "машин"), True),
    "house": Noun(("a", "house", "houses"), ("f", "maison", "maisons"), ("n", "Haus", "Häuser"), ("f", "casa", "casas"), ("f", "una", "casa", "case"), ("m", "дом", "дома", "домов"), True),
    "tree": Noun(("a", "tree", "trees"), ("m", "arbre", "arbres"), ("m", "Baum", "Bäume"), ("m", "árbol", "árboles"), ("m", "un", "albero", "alberi"), ("n", "дерево", "дерева", "деревьев")),
    "boat": Noun(("a", "boat", "boats"), ("m", "bateau", "bateaux"), ("n", "Boot", "Boote"), ("m", "barco", "barcos"), ("f", "una", "barca", "barche"), ("f", "лодку", "лодки", "лодок"), True),
    "box": Noun(("a", "box", "boxes"), ("f", "boîte", "boîtes"), ("f", "Schachtel", "Schachteln"), ("f", "caja", "cajas"), ("f", "una", "scatola", "scatole"), ("f", "коробку", "коробки", "коробок"), True),
    "bag": Noun(("a", "bag", "bags"), ("m", "sac", "sacs"), ("f", "Tasche", "Taschen"), ("f", "bolsa", "bolsas"), ("f", "una", "borsa", "borse"), ("f", "сумку", "сумки", "сумок"), True),
    "bottle": Noun(("a", "bottle", "bottles"), ("f", "bouteille", "bouteilles"), ("f", "Flasche", "Flaschen"), ("f", "botella", "botellas"), ("f", "una", "bottiglia", "bottiglie"), ("f", "бутылку", "бутылки", "бутылок"), True),
    "window": Noun(("a", "window", "windows"), ("f", "fenêtre", "fenêtres"), ("n", "Fenster", "Fenster"), ("f", "ventana", "ventanas"), ("f", "una", "finestra", "finestre"), ("n", "окно", "окна", "окон")),
    "chair": Noun(("a", "chair", "chairs"), ("f", "chaise", "chaises"), ("m", "Stuhl", "Stühle"), ("f", "silla", "sillas"), ("f", "una", "sedia", "sedie"), ("m", "стул", "стула", "стульев"), True),
    "basket": Noun(("a", "basket", "baskets"), ("m", "panier", "paniers"), ("m", "Korb", "Körbe"), ("f", "cesta", "cestas"), ("m", "un", "cesto", "cesti"), ("f", "корзину", "корзины", "корзин"), True),
    "suitcase": Noun(("a", "suitcase", "suitcases"), ("f", "valise", "valises"), ("m", "Koffer", "Koffer"), ("f", "maleta", "maletas"), ("f", "una", "valigia", "valigie"), ("m", "чемодан", "чемодана", "чемоданов"), True),
    "flower": Noun(("a", "flower", "flowers"), ("f", "fleur", "fleurs"), ("f", "Blume", "Blumen"), ("f", "flor", "flores"), ("m", "un", "fiore", "fiori"), ("m", "цветок", "цветка", "цветов"), True),
    "cup": Noun(("a", "cup", "cups"), ("f", "tasse", "tasses"), ("f", "Tasse", "Tassen"), ("f", "taza", "tazas"), ("f", "una", "tazza", "tazze"), ("f", "чашку", "чашки", "чашек"), True),
    "plate": Noun(("a", "plate", "plates"), ("f", "assiette", "assiettes"), ("m", "Teller", "Teller"), ("m", "plato", "platos"), ("m", "un", "piatto", "piatti"), ("f", "тарелку", "тарелки", "тарелок"), True),
    "shirt": Noun(("a", "shirt", "shirts"), ("f", "chemise", "chemises"), ("n", "Hemd", "Hemden"), ("f", "camisa", "camisas"), ("f", "una", "camicia", "camicie"), ("f", "рубашку", "рубашки", "рубашек"), True),
    "hat": Noun(("a", "hat", "hats"), ("m", "chapeau", "chapeaux"), ("m", "Hut", "Hüte"), ("m", "sombrero", "sombreros"), ("m", "un", "cappello", "cappelli"), ("f", "шляпу", "шляпы", "шляп"), True),
    "bicycle": Noun(("a", "bicycle", "bicycles"), ("m", "vélo", "vélos"), ("n", "Fahrrad", "Fahrräder"), ("f", "bicicleta", "bicicletas"), ("f", "una", "bicicletta", "biciclette"), ("m", "велосипед", "велосипеда", "велосипедов"), True),
    "key": Noun(("a", "key", "keys"), ("f", "clé", "clés"), ("m", "Schlüssel", "Schlüssel"), ("f", "llave", "llaves"), ("f", "una", "chiave", "chiavi"), ("m", "ключ", "ключа", "ключей"), True),
    "umbrella": Noun(("an", "umbrella", "umbrellas"), ("m", "parapluie", "parapluies"), ("m", "Regenschirm", "Regenschirme"), ("m", "paraguas", "paraguas"), ("m", "un", "ombrello", "ombrelli"), ("m", "зонт", "зонта", "зонтов"), True),
}
"""Object nouns by English key."""

VERBS = (
    (("reads", "lit", "liest", "lee", "legge", "читает"), ("book", "letter", "newspaper", "postcard")),
    (("writes", "écrit", "schreibt", "escribe", "scrive", "пишет"), ("letter", "postcard", "book")),
    (("buys", "achète", "kauft", "compra", "compra", "покупает"), ("book", "hat", "bicycle", "flower", "shirt", "umbrella", "apple", "cake")),
    (("eats", "mange", "isst", "come", "mangia", "ест"), ("apple", "orange", "pear", "banana", "cake")),
    (("drinks", "boit", "trinkt", "bebe", "beve", "пьёт"), ("coffee", "tea", "water", "milk", "juice")),
    (("sees", "voit", "sieht", "ve", "vede", "видит"), ("car", "house", "tree", "boat")),
    (("opens", "ouvre", "öffnet", "abre", "apre", "открывает"), ("box", "bag", "bottle", "window", "letter")),
    (("carries", "porte", "trägt", "lleva", "porta", "несёт"), ("bag", "box", "chair", "basket", "suitcase")),
    (("draws", "dessine", "zeichnet", "dibuja", "disegna", "рисует"), ("house", "tree", "car", "flower", "boat")),
    (("washes", "lave", "wäscht", "lava", "lava", "моет"), ("cup", "plate", "car", "shirt")),
    (("sells", "vend", "verkauft", "vende", "vende", "продаёт"), ("car", "house", "hat", "bicycle", "book")),
    (("looks for", "cherche", "sucht", "busca", "cerca", "ищет"), ("key", "bag", "hat", "umbrella", "book")),
    (("finds", "trouve", "findet", "encuentra", "trova", "находит"), ("key", "letter", "umbrella", "bag")),
)
"""Verbs (third person singular, present) with the objects each one takes."""
# fmt: on

_DE_ARTICLE = {"m": "einen", "f": "eine", "n": "ein"}  # indefinite, accusative
_DE_ADJ_ENDING = {"m": "en", "f": "e", "n": "es"}  # mixed declension, accusative
_FR_ARTICLE = {"m": "un", "f": "une"}
_ES_ARTICLE = {"m": "un", "f": "una"}
_GENDER_INDEX = {"m": 0, "f": 1, "n": 2}


class ObjectPhrase(NamedTuple):
    """An object: a noun with either nothing, a colour, or a number."""

    noun: str  # key into NOUNS
    colour: int | None = None  # index into COLOURS
    number: int | None = None  # one of NUMBERS


class Meaning(NamedTuple):
    """One sentence's meaning; indices into the lexicon tables (None: absent)."""

    subject: int
    verb: int
    obj: ObjectPhrase
    place: int | None
    time: int | None


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _object_parts(lang: str, phrase: ObjectPhrase) -> list[tuple[str, str]]:
    """Render an object phrase as ``(slot, text)`` parts: ``("number", "three"), ("object",
    "books")`` for a number, one ``("object", ...)`` part otherwise (accusative where the
    language marks it)."""
    noun = NOUNS[phrase.noun]
    colour = None if phrase.colour is None else COLOURS[phrase.colour]
    n = phrase.number
    if lang == "en":
        article, singular, plural = noun.en
        if n is not None:
            return [("number", NUMBER_WORDS["en"][n]), ("object", plural)]
        if colour is not None:
            return [("object", f"a {colour.en} {singular}")]
        return [("object", f"{article} {singular}")]
    if lang in ("fr", "es"):
        gender, singular, plural = getattr(noun, lang)
        if n is not None:
            return [("number", NUMBER_WORDS[lang][n]), ("object", plural)]
        article = (_FR_ARTICLE if lang == "fr" else _ES_ARTICLE)[gender]
        if colour is not None:
            adjective = getattr(colour, lang)[_GENDER_INDEX[gender]]
            return [("object", f"{article} {singular} {adjective}")]
        return [("object", f"{article} {singular}")]
    if lang == "de":
        gender, singular, plural = noun.de
        if n is not None:
            return [("number", NUMBER_WORDS["de"][n]), ("object", plural)]
        if colour is not None:
            return [
                ("object", f"{_DE_ARTICLE[gender]} {colour.de}{_DE_ADJ_ENDING[gender]} {singular}")
            ]
        return [("object", f"{_DE_ARTICLE[gender]} {singular}")]
    if lang == "it":
        gender, article, singular, plural = noun.it
        if n is not None:
            return [("number", NUMBER_WORDS["it"][n]), ("object", plural)]
        head = f"{article}{singular}" if article.endswith("'") else f"{article} {singular}"
        if colour is not None:
            return [("object", f"{head} {colour.it[_GENDER_INDEX[gender]]}")]
        return [("object", head)]
    if lang == "ru":
        gender, accusative, genitive_sg, genitive_pl = noun.ru
        if n is not None:
            numeral = NUMBER_WORDS["ru"][n]
            if isinstance(numeral, dict):
                numeral = numeral[gender]
            return [("number", numeral), ("object", genitive_sg if n <= 4 else genitive_pl)]
        if colour is not None:
            return [("object", f"{colour.ru[_GENDER_INDEX[gender]]} {accusative}")]
        return [("object", accusative)]
    raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def render(meaning: Meaning, lang: str) -> str:
    """Write a meaning as a sentence in one language.

    Parameters
    ----------
    meaning : Meaning
        The meaning to render.
    lang : str
        One of :data:`LANGUAGES`.

    Returns
    -------
    str
        A capitalised sentence ending with a full stop.

    Example
    -------
    >>> m = Meaning(4, 0, ObjectPhrase("book", colour=0), place=0, time=0)
    >>> render(m, "de")
    'Jeden Morgen liest der Lehrer ein rotes Buch im Park.'
    >>> render(m, "ru")
    'Каждое утро учитель читает красную книгу в парке.'
    """
    text, _ = render_with_slots(meaning, lang)
    return text


#: Slots of a sentence: who acts, what on, how many, where, when (the verb is no slot).
SLOTS = ("person", "object", "number", "place", "time")


def _parts(meaning: Meaning, lang: str) -> list[tuple[str | None, str]]:
    """The sentence's ``(slot, text)`` parts in word order (slot ``None``: the verb)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
    column = LANGUAGES.index(lang)
    subject = [("person", SUBJECTS[meaning.subject][column])]
    verb = [(None, VERBS[meaning.verb][0][column])]
    obj = _object_parts(lang, meaning.obj)
    place = [] if meaning.place is None else [("place", PLACES[meaning.place][column])]
    time = [] if meaning.time is None else [("time", TIMES[meaning.time][column])]

    if lang == "de":
        # Verb second: a fronted time adverbial moves the subject after the verb.
        order = [time, verb, subject, obj, place] if time else [subject, verb, obj, place]
    elif lang == "ru":
        # Neutral Russian order puts the time adverbial first.
        order = [time, subject, verb, obj, place]
    else:
        order = [subject, verb, obj, place, time]
    return [part for group in order for part in group]


def render_with_slots(meaning: Meaning, lang: str) -> tuple[str, list[list]]:
    """A sentence and its slots as ``[slot, begin, end]`` character offsets (end exclusive).

    The slots are :data:`SLOTS`: the subject (person), the object phrase
    (object; its numeral is the separate slot number), the place and the time.

    Example
    -------
    >>> m = Meaning(4, 0, ObjectPhrase("book", number=3), place=0, time=None)
    >>> text, slots = render_with_slots(m, "en")
    >>> text, [(label, text[b:e]) for label, b, e in slots]
    ('The teacher reads three books in the park.', [('person', 'The teacher'), ('number', 'three'), ('object', 'books'), ('place', 'in the park')])
    """
    pieces, slots, offset = [], [], 0
    for slot, text in _parts(meaning, lang):
        if pieces:
            offset += 1  # the space before this part
        if slot is not None:
            slots.append([slot, offset, offset + len(text)])
        pieces.append(text)
        offset += len(text)
    return _capitalise(" ".join(pieces)) + ".", slots


# ---------------------------------------------------------------------------
# The space of meanings and the corpus
# ---------------------------------------------------------------------------


def _predicates() -> list[tuple[int, ObjectPhrase]]:
    """Every (verb, object phrase) pair the grammar allows, in a fixed order."""
    predicates = []
    for verb_index, (_, objects) in enumerate(VERBS):
        for noun in objects:
            predicates.append((verb_index, ObjectPhrase(noun)))
            if NOUNS[noun].colourable:
                for colour in range(len(COLOURS)):
                    predicates.append((verb_index, ObjectPhrase(noun, colour=colour)))
            for n in NUMBERS:
                predicates.append((verb_index, ObjectPhrase(noun, number=n)))
    return predicates


_PREDICATES = _predicates()


def meaning_space_size() -> int:
    """Number of distinct meanings the grammar can express.

    Example
    -------
    >>> meaning_space_size() > 100_000
    True
    """
    return len(SUBJECTS) * len(_PREDICATES) * (len(PLACES) + 1) * (len(TIMES) + 1)


def meaning_from_index(index: int) -> Meaning:
    """Decode a meaning from its index in ``range(meaning_space_size())``.

    The index is a mixed-radix number (subject, predicate, place or none,
    time or none); "none" is the last digit value of the place and time.

    Example
    -------
    >>> meaning_from_index(0).subject
    0
    """
    if not 0 <= index < meaning_space_size():
        raise ValueError(f"meaning index {index} outside [0, {meaning_space_size()})")
    index, time = divmod(index, len(TIMES) + 1)
    index, place = divmod(index, len(PLACES) + 1)
    subject, predicate = divmod(index, len(_PREDICATES))
    verb, obj = _PREDICATES[predicate]
    return Meaning(
        subject=subject,
        verb=verb,
        obj=obj,
        place=None if place == len(PLACES) else place,
        time=None if time == len(TIMES) else time,
    )


def draw_meanings(n_sentences: int, seed: int = 0) -> list[Meaning]:
    """The ``n_sentences`` distinct meanings of :func:`build_parallel_corpus` (same seed, same order).

    Example
    -------
    >>> draw_meanings(2, seed=0) == draw_meanings(2, seed=0)
    True
    """
    total = meaning_space_size()
    if not 0 < n_sentences <= total:
        raise ValueError(f"n_sentences must be in [1, {total}], got {n_sentences}")
    rng = np.random.default_rng(seed)
    indices = rng.choice(total, size=n_sentences, replace=False)
    return [meaning_from_index(index) for index in indices.tolist()]


def build_parallel_corpus(n_sentences: int, seed: int = 0) -> list[dict[str, str]]:
    """Draw ``n_sentences`` distinct meanings and write each in every language.

    Parameters
    ----------
    n_sentences : int
        How many sentences (meanings); at most :func:`meaning_space_size`.
    seed : int
        Seed of the draw; the same seed always gives the same corpus.

    Returns
    -------
    list of dict
        ``[{"id": "s00000", "en": ..., "fr": ..., "de": ..., "es": ..., "it": ...,
        "ru": ...}, ...]``; ids number the sentences in order.  No sentence
        repeats in any language.

    Example
    -------
    >>> corpus = build_parallel_corpus(3, seed=0)
    >>> len(corpus), sorted(corpus[0]) == sorted(("id",) + LANGUAGES)
    (3, True)
    """
    width = max(5, len(str(n_sentences - 1)))
    corpus = []
    for i, meaning in enumerate(draw_meanings(n_sentences, seed)):
        row = {"id": f"s{i:0{width}d}"}
        row.update({lang: render(meaning, lang) for lang in LANGUAGES})
        corpus.append(row)
    for lang in LANGUAGES:
        if len({row[lang] for row in corpus}) != len(corpus):
            # Unreachable while every lexicon column holds distinct entries.
            raise RuntimeError(f"the grammar rendered two meanings alike in {lang!r}")
    return corpus


class CorpusSplit(NamedTuple):
    """Disjoint parts of a corpus: no meaning is in two of them."""

    train: list[dict[str, str]]
    dev: list[dict[str, str]]
    heldout: list[dict[str, str]]


def split_corpus(
    corpus: Sequence[dict[str, str]], n_heldout: int, seed: int = 0, n_dev: int = 0
) -> CorpusSplit:
    """Hold out sentences for evaluation (and optionally validation).

    Each meaning goes to exactly one part, so no held-out meaning is ever seen,
    in any language, during training.

    Parameters
    ----------
    corpus : sequence of dict
        Output of :func:`build_parallel_corpus`.
    n_heldout : int
        Sentences held out for the final evaluation.
    seed : int
        Seed of the shuffle deciding which sentences are held out.
    n_dev : int
        Sentences held out for validation during training (disjoint from both).

    Returns
    -------
    CorpusSplit
        ``(train, dev, heldout)``, each in corpus order.

    Example
    -------
    >>> split = split_corpus(build_parallel_corpus(20), n_heldout=5, n_dev=3)
    >>> len(split.train), len(split.dev), len(split.heldout)
    (12, 3, 5)
    """
    ids = [row["id"] for row in corpus]
    if len(set(ids)) != len(ids):
        raise ValueError("corpus ids are not unique")
    if n_heldout < 0 or n_dev < 0 or n_heldout + n_dev >= len(corpus):
        raise ValueError(
            f"cannot hold out {n_heldout} + {n_dev} of {len(corpus)} sentences "
            "and keep at least one for training"
        )
    order = np.random.default_rng(seed).permutation(len(corpus))
    part = np.zeros(len(corpus), dtype=np.int64)  # 0 train, 1 dev, 2 held out
    part[order[:n_heldout]] = 2
    part[order[n_heldout : n_heldout + n_dev]] = 1
    rows = [dict(row) for row in corpus]
    return CorpusSplit(
        train=[r for r, p in zip(rows, part) if p == 0],
        dev=[r for r, p in zip(rows, part) if p == 1],
        heldout=[r for r, p in zip(rows, part) if p == 2],
    )
