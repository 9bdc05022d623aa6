"""Quick start with a tiny random BERT classifier (offline; the scores are meaningless).

``python examples/quickstart.py [FOLDER]`` also saves the model and tokenizer to FOLDER, so that
``gaflow explain "..." --model FOLDER`` can be tried from the command line.
"""

import sys
import tempfile
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

import gaflow

words = "although this dog is not cute , it is very smart .".split()
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)]
folder = Path(tempfile.mkdtemp())
(folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
tokenizer = BertTokenizerFast(str(folder / "vocab.txt"))
torch.manual_seed(0)
config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, num_labels=2)
model = BertForSequenceClassification(config).eval()

exp = gaflow.explain(model, tokenizer, "although this dog is not cute, it is very smart.")
print("target", exp.target_label, f"p={exp.probability:.3f}", f"flow={exp.flow_value:.4g}")
for word, score in exp.words():
    print(f"{word:>10s} {score:.4g}")
assert abs(exp.scores.sum() - exp.flow_value) <= 1e-9 * exp.flow_value

if len(sys.argv) > 1:
    model.save_pretrained(sys.argv[1])
    tokenizer.save_pretrained(sys.argv[1])
    print(f"saved the tiny model to {sys.argv[1]}")
