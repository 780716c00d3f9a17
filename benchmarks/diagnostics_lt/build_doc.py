"""Assemble docs/diagnostics-results-cpu.md: prose from doc_template.md, every number-bearing
table from the generated tables (read from the stored result JSON files by tables.py).

Markers: <<prefix:Heading start>> is replaced by that section's body from PREFIX_tables.md.
"""

import re
import sys
from pathlib import Path

here = Path(__file__).parent
sections: dict[tuple[str, str], str] = {}
for prefix in ("fmnist", "cifar"):
    f = here / f"{prefix}_tables.md"
    if not f.exists():
        continue
    parts = re.split(r"^### ", f.read_text(), flags=re.M)
    for part in parts[1:]:
        head, _, body = part.partition("\n")
        sections[(prefix, head)] = body.strip("\n")


def fill(m: re.Match) -> str:
    prefix, start = m.group(1), m.group(2)
    hits = [v for (p, h), v in sections.items() if p == prefix and h.startswith(start)]
    if len(hits) != 1:
        sys.exit(f"marker {m.group(0)}: {len(hits)} sections")
    return hits[0]


text = (here / "doc_template.md").read_text()
text = text.replace("<<CIFAR>>", (here / "cifar_template.md").read_text().strip("\n"))
script = (here / "train_ldam.py").read_text().strip("\n")
text = text.replace("<<SCRIPT>>", f"```python\n{script}\n```")
import json  # noqa: E402

pre = []
for label, f in (("CE", "fmnist_ce.diagnose.json"), ("LDAM-DRW", "fmnist_ldam.diagnose.json")):
    t = json.loads((here / f).read_text())["analyses"]["adversaries"]["table_ii"]
    pre.append(f"{label} {t['nnb']:.4f} / {t['fdr']:.4f} / {t['random']:.4f}")
text = text.replace("<<PREFIX>>", "; ".join(pre))
text = re.sub(r"<<(\w+):([^>]+)>>", fill, text)
Path(sys.argv[1]).write_text(text)
print("wrote", sys.argv[1])
