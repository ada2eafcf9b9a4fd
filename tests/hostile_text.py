"""Text that breaks careless readers, for the release fixtures' transcripts and translations.

SpeechBrain's ``DynamicItemDataset.from_csv`` substitutes ``$word``; CSV and
TSV writers must quote commas, quotes and line ends; byte-order marks and
CRLF line ends come from files edited on Windows. A fixture puts these where
its release format can carry them (no tab or line end inside a TSV field) and
its test checks that every such row reaches the manifest unchanged and that
training ran on it.
"""

#: ``$`` words, braces, percent signs, both quote kinds, commas; no tab, no line end.
DOLLARS = "$5 ${x} $HOME"
MARKS = "{braces} 100% \"double\" 'single', commas"
#: Outside the Basic Multilingual Plane (two UTF-16 units), and right-to-left scripts.
EMOJI = "\U0001f389"
RTL = "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627"
#: All of the above, one line with no tab.
LINE = f"{DOLLARS} {MARKS} {EMOJI} {RTL}"
#: A very long line (one sentence, no full stop).
LONG = " ".join(["word"] * 2000) + " $end"
BOM = "\ufeff"
