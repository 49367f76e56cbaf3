"""Tiny in-repo text model for fast tests: a 2-layer BERT with a character-level WordPiece vocab.

Random weights from a fixed seed, written once as an ordinary Hugging Face directory, so tests
exercise exactly the code path of real text backbones (AutoModel + AutoTokenizer) in seconds.
Not pretrained: never use it to judge transfer.
"""

from __future__ import annotations

import string
from pathlib import Path

from ..io_utils import atomic_dir, cache_home

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab() -> list[str]:
    symbols = list(string.ascii_lowercase + string.digits + string.punctuation)
    return SPECIALS + symbols + ["##" + s for s in string.ascii_lowercase + string.digits]


def tiny_bert_dir() -> Path:
    """Build (once) and return the tiny BERT directory in the cache."""
    # v1 was built with a tokenizer holding only the special tokens (every word was [UNK]).
    final = cache_home() / "zoo" / "tiny-bert-v2"
    if (final / "config.json").is_file():
        return final
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    with atomic_dir(final, overwrite=True) as staging:
        vocab_file = staging / "vocab.txt"
        vocab_file.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
        # transformers 5 takes the vocabulary itself (`vocab=`); a `vocab_file=` keyword is silently ignored.
        tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(_vocab())}, do_lower_case=True)
        config = BertConfig(
            vocab_size=len(_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=256,
        )
        torch.manual_seed(0)
        BertModel(config).save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    return final
