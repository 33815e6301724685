#!/usr/bin/env python3
"""tools/make_probe_corpus.py SHARED_CORPORA OUT.jsonl: the search example's corpus.

JSON Lines, one corpus document a line, each with a "label":
  ja          passages of about 3,000 characters from Japanese works (ja_train.txt)
  en          passages of about 8,000 characters, three from each English book (en_train.txt)
  desperate   16 short English probes written for this example: someone desperate
  calm        16 short English probes: someone calm, the same situations
  shiritori / shiritori_n   the 40 sample shiritori games (shiritori_sample.jsonl)
Passages are cut at paragraph ends, from the middle of each work. The shared
corpora are the model's training text (the held-out split is not shared), so
the ja/en passages are not unseen text; the probes and the games are.
"""
import json
import sys

DESPERATE = [
    "She was desperate to find her way home before the storm broke over the hills.",
    "He begged them again and again, desperate for any news of his missing brother.",
    "With no money left and the rent due, she grew desperate and sold her mother's ring.",
    "The sailors, desperate for water, drank the rain that pooled in the torn sail.",
    "I am desperate, he wrote; if you do not answer this letter I do not know what I shall do.",
    "They were desperate now, clawing at the locked door as the smoke filled the hall.",
    "In a desperate voice the child called for her father across the frozen river.",
    "He made one last desperate attempt to reach the ledge before his fingers slipped.",
    "Desperate and starving, the travellers boiled their boots for soup.",
    "She ran from house to house, desperate for someone who would take the sick baby in.",
    "The general sent a desperate message: hold the bridge at any cost until dawn.",
    "Nobody would lend him a penny, and by evening he was desperate enough to steal.",
    "Her hands shook as she searched the drawers, desperate to find the missing will.",
    "We are lost, and the lamp is failing, cried the desperate miner in the dark.",
    "He was so desperate for work that he walked twenty miles to the factory gate.",
    "In desperate haste she tore the bandage from her own dress to stop the bleeding.",
]
CALM = [
    "She walked home slowly before the rain, watching the clouds drift over the hills.",
    "He asked them once more, quite calmly, whether there was news of his brother.",
    "The rent was paid, and she sat by the window mending her mother's old shawl.",
    "The sailors rested on deck and drank cool water while the sail dried in the sun.",
    "I am well, he wrote; answer this letter whenever you have a quiet afternoon.",
    "They sat together by the open door as the evening light filled the hall.",
    "In a gentle voice the child called to her father across the quiet river.",
    "He climbed to the ledge at an easy pace and sat there to enjoy the view.",
    "Rested and well fed, the travellers cooked a simple soup by the fire.",
    "She went from house to house with a basket of bread for the neighbours.",
    "The general sent a brief message: the bridge is quiet, and all is well.",
    "He had saved a little money, and in the evening he bought a book he liked.",
    "She sorted the drawers at leisure and found the old letters she had kept.",
    "The lamp burns steadily, said the miner, and the tunnel is dry and warm.",
    "He had a good job at the factory and walked there each morning in the sun.",
    "She folded the clean linen neatly and put it away in the cedar chest.",
]


def passages(path, n_docs, chars, per_work):
    """per_work passages from each of n_docs / per_work works spread over the file"""
    works = open(path, encoding="utf-8").read().split("\n\n")
    works = [w for w in works if len(w) > 3 * per_work * chars]
    step = max(1, len(works) // (n_docs // per_work))
    out = []
    for w in works[::step]:
        paras = w.split("\n")
        for k in range(per_work):
            start, text = len(paras) * (k + 1) // (per_work + 1), ""
            for p in paras[start:]:
                if len(text) + len(p) > chars and text:
                    break
                text += p + "\n"
            out.append(text.strip())
    return out[:n_docs]


def main():
    src, out = sys.argv[1], sys.argv[2]
    docs = [(t, "ja") for t in passages(f"{src}/ja_train.txt", 40, 3000, 1)]
    docs += [(t, "en") for t in passages(f"{src}/en_train.txt", 40, 8000, 3)]
    docs += [(t, "desperate") for t in DESPERATE] + [(t, "calm") for t in CALM]
    for line in open(f"{src}/shiritori_sample.jsonl", encoding="utf-8"):
        rec = json.loads(line)
        docs.append((rec["text"], rec["label"]))
    with open(out, "w", encoding="utf-8") as f:
        for text, label in docs:
            f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    print(f"{out}: {len(docs)} documents", file=sys.stderr)


if __name__ == "__main__":
    main()
