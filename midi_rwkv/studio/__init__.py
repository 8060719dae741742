"""``midi-rwkv studio``: a local web app to co-create with the model (a piano roll, controls, candidates to audition,
accept and undo). The server is Starlette on uvicorn; the page is plain HTML, CSS and ES modules in ``static/``."""
