# Stand-in for the sentencepiece package, put on PYTHONPATH by scripts/llama/convert.sh only where the
# real one is missing (the GPU machine has no network to install it). llama.cpp's converter imports
# sentencepiece before it looks for tokenizer.model; Qwen2.5-VL has none (its tokenizer is BPE in
# tokenizer.json), so the converter falls back to that and this class is never instantiated.


class SentencePieceProcessor:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("sentencepiece is not installed (scripts/llama/pyshim stands in for it)")
