#!/usr/bin/env python3
"""Golden tokenizer and chat-template outputs from HF transformers, for tests/tokenizer_chat.rs.

Usage:
    pip install transformers gguf jinja2 tokenizers
    python3 scripts/make_tokenizer_fixtures.py [--models DIR] [--out tests/fixtures/tokenizer_golden.json]
        DIR defaults to $SRLM_MODELS or ~/.cache/srlm-models (fetch with ../shared/models/fetch.sh).
    python3 scripts/make_tokenizer_fixtures.py --check-saved DIR
        Loads DIR/<name>/ (written by `Tokenizer::save_hf`, e.g. by running the Rust test with
        SRLM_TOKENIZER_SAVE_DIR=DIR) with AutoTokenizer and checks it against the fixture.

For each GGUF, transformers converts the GGUF vocabulary into an HF fast tokenizer
(`AutoTokenizer.from_pretrained(dir, gguf_file=NAME)`). That conversion does not carry everything the
model family's own tokenizer.json has: Qwen2's NFC normalizer and SmolLM2's Digits pre-tokenizer.
`ids` comes from the converted tokenizer with those two restored (what srlm builds); where plain
conversion disagrees, its ids are kept as `transformers_gguf_ids` so the difference stays visible.
Chat renders come from `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from transformers import AutoTokenizer

MODELS = [
    # (fixture name, GGUF file, what the family's tokenizer.json has that the GGUF conversion lacks)
    ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "nfc"),
    ("smollm2-135m-instruct", "smollm2-135m-instruct-q4_1.gguf", "digits"),
]

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "12345",
    "3.14",
    "x = 1,000,000 and 2^10 = 1024",
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ",
    "Emoji: 😀👍🏽🇺🇸 ❤️",
    "Café naïve résumé",
    "Cafe\u0301 decomposed",
    "   leading and trailing   ",
    "tabs\tand\nnewlines\r\n\n\nmixed  \n  ",
    "<|im_start|>hello<|im_end|>",
    "text <|im_end|> more <|endoftext|>tail",
    "<|im_end|><|im_end|>\n<|im_start|>",
    "<think>\nLet me think.\n</think>\n<answer>42</answer>",
    "\\frac{1}{2} + \\sqrt{x^2 + y^2} = \\boxed{3}",
    "def foo(x):\n    return x ** 2  # square\n",
    "I'm sure they'll say it's fine, DON'T you think? We've seen it.",
    "",
    " ",
    "\n\n",
    "Numbers: ٣ ² ½ Ⅻ",
    '<tool_call>{"name": "f"}</tool_call>',
    "Привет, мир! مرحبا",
    "a\u00a0b\u200bc",
    "The answer is: 2 + 2 = 4. Therefore, 4.",
]

CONVERSATIONS = [
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    [{"role": "user", "content": "Solve: \\frac{1}{2} + \\frac{1}{3}"}],
    [
        {"role": "system", "content": "Think in <think></think>, answer in <answer></answer>."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\n2+2=4\n</think>\n<answer>4</answer>"},
        {"role": "user", "content": "And 3+3?"},
    ],
    [{"role": "user", "content": "Line1\nLine2 — 你好 😀 {{ not jinja }}"}],
    [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": "Calling the tool."},
        {"role": "tool", "content": '{"result": 1}'},
        {"role": "tool", "content": "2"},
        {"role": "user", "content": "Thanks."},
    ],
    [{"role": "user", "content": "hi"}, {"role": "system", "content": "A late system turn."}],
]


def family_tokenizer(hf_tok, fix):
    """The converted backend with what the family's tokenizer.json has restored."""
    ref = Tokenizer.from_str(hf_tok.backend_tokenizer.to_str())
    if fix == "nfc":
        ref.normalizer = normalizers.NFC()
    elif fix == "digits":
        ref.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        )
    return ref


def model_fixture(models_dir, name, gguf, fix):
    tok = AutoTokenizer.from_pretrained(str(models_dir), gguf_file=gguf)
    ref = family_tokenizer(tok, fix)
    encodings = []
    for text in TEXTS:
        ids = ref.encode(text, add_special_tokens=False).ids
        entry = {"text": text, "ids": ids, "decoded": ref.decode(ids, skip_special_tokens=False)}
        plain = tok.encode(text, add_special_tokens=False)
        if plain != ids:
            entry["transformers_gguf_ids"] = plain
            print(f"{name}: GGUF conversion differs on {text!r}: {plain} vs {ids}", file=sys.stderr)
        encodings.append(entry)
    chats = []
    for messages in CONVERSATIONS:
        for add_generation_prompt in (False, True):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
            ids = ref.encode(text, add_special_tokens=False).ids
            chats.append(
                {"messages": messages, "add_generation_prompt": add_generation_prompt, "text": text, "ids": ids}
            )
    return {
        "name": name,
        "file": gguf,
        "vocab_size": len(tok),
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "encodings": encodings,
        "chats": chats,
    }


def check_saved(saved_dir, fixture_path):
    fixture = json.loads(Path(fixture_path).read_text())
    failures = 0
    for model in fixture["models"]:
        tok = AutoTokenizer.from_pretrained(str(Path(saved_dir) / model["name"]))
        for enc in model["encodings"]:
            got = tok.encode(enc["text"], add_special_tokens=True)
            if got != enc["ids"]:
                failures += 1
                print(f"{model['name']}: {enc['text']!r}: {got} != {enc['ids']}")
            decoded = tok.decode(enc["ids"], skip_special_tokens=False)
            if decoded != enc["decoded"]:
                failures += 1
                print(f"{model['name']}: decode {enc['ids']}: {decoded!r} != {enc['decoded']!r}")
        for chat in model["chats"]:
            text = tok.apply_chat_template(
                chat["messages"], tokenize=False, add_generation_prompt=chat["add_generation_prompt"]
            )
            if text != chat["text"]:
                failures += 1
                print(f"{model['name']}: chat render differs: {text!r} != {chat['text']!r}")
        print(f"{model['name']}: checked {len(model['encodings'])} encodings, {len(model['chats'])} chats")
    return failures


def main():
    repo = Path(__file__).resolve().parent.parent
    default_models = os.environ.get("SRLM_MODELS", str(Path.home() / ".cache" / "srlm-models"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=default_models)
    parser.add_argument("--out", default=str(repo / "tests" / "fixtures" / "tokenizer_golden.json"))
    parser.add_argument("--check-saved", metavar="DIR")
    args = parser.parse_args()

    if args.check_saved:
        failures = check_saved(args.check_saved, args.out)
        print("OK" if failures == 0 else f"{failures} mismatches")
        sys.exit(1 if failures else 0)

    models = [model_fixture(Path(args.models), *m) for m in MODELS]
    qwen = models[0]["encodings"][TEXTS.index("<|im_start|>hello<|im_end|>")]["ids"]
    assert qwen == [151644, 14990, 151645], qwen
    fixture = {
        "generator": "scripts/make_tokenizer_fixtures.py",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "models": models,
    }
    Path(args.out).write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
