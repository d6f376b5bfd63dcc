"""The web UI: tab builders and thin callbacks over the pipeline.

Import ``app_modules.ui.app.build_demo`` for the Gradio app; ``runtime`` and ``session`` import no
Gradio, so the FastAPI app shares them without loading the UI toolkit.
"""
