"""The benchmark scripts' shared writer: puts one generated section into BENCHMARKS.md."""

import os


def write(path, name, section):
    """Replaces what lies between <!-- NAME:begin --> and <!-- NAME:end --> (markers included;
    `section` carries its own) with `section`, or appends it; prints it too."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(section)
