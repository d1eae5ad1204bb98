"""The answer: what a request means, how it is answered in each mode, and what the answer is made of.

    types.py     Mode, AnswerRequest (the question's language detected once), AnswerUpdate (data only)
    service.py   ExpertService: request (understood once), answer, stop
    compare.py   one question in every mode at once
    prompts.py   what a mode may see of a conversation, the person's input checked, messages, fitting
    pipeline.py  the stages: retrieve -> gate -> prompt -> decode -> judge
    evidence.py  which source sentences a question needs and which support an answer
    ports.py     what the answer needs from parts it does not own: Retriever, AdapterResolver

The scorecard fingerprints this package: a change here starts fresh runs. Nothing here formats for a reader
(`ui/presentation.py` does) or builds a prompt inside an engine.
"""
