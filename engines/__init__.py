"""The engines: whatever turns prompt token ids into text, behind one protocol (`engines.base.Engine`).

    base.py                 Engine, GenerationParams, the new-token limit
    decoding.py             the answer path's logits processors, incremental detokenizing
    transformers_engine.py  generate on torch weights; batching; PEFT residency (residency.py)
    llamacpp.py             llama.cpp contexts and scheduler (threads.py, llamacpp_lib.py, probe.py, cpu_check.py)
    gguf.py                 writing GGUFs, re-quantization, LoRA conversion
    openai_client.py        a client of an OpenAI-compatible server (a tokenizer and a config, no model)
    loading.py, embedded.py the model: device, dtype, Hub, 4-bit, the embedded GGUF and its cache
    factory.py              which engine, and the fallback when llama.cpp cannot serve

No engine inherits another, builds a prompt or checks a message.
"""
