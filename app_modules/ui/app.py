"""The Gradio app: tabs over one shared ``Runtime`` (default settings, loaded backends) and a ``Session``
per browser tab (its conversations, files and own settings)."""

from __future__ import annotations

import gradio as gr

from app_modules.config import Settings
from app_modules.ui.chat_tabs import builtin_tab, clone_tab, conversation_tab, photo_tab
from app_modules.ui.realtime_tab import realtime_tab
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import close_session, remove_session_folders
from app_modules.ui.settings_tab import settings_tab


def build_demo(settings: Settings, runtime: Runtime | None = None) -> gr.Blocks:
    """Build the UI. Loads no model: backends load on the first turn that needs them."""
    runtime = runtime or Runtime(settings)
    # gradio's own cache (copies of the videos it serves) is emptied of files older than an hour
    with gr.Blocks(title="Talker", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Talker\nA portrait that answers you, lip-synced. Type or speak a question.")
        # which model answers here, filled in when the page opens (auto looks for servers then, not at import)
        answering = gr.Markdown(elem_id="answering")
        # the session's histories, folder and settings; removed by the delete callback when the state expires
        state = gr.State(None, delete_callback=close_session)
        with gr.Tabs():
            with gr.Tab("Avatar chat", id="builtin"):
                builtin_tab(runtime, state)
            with gr.Tab("Your photo", id="photo"):
                photo_tab(runtime, state)
            with gr.Tab("Conversation", id="conversation"):
                conversation_tab(runtime, state)
            with gr.Tab("Cloned voice", id="clone"):
                clone_tab(runtime, state)
            realtime_tab(runtime, state)
            with gr.Tab("Settings", id="settings"):
                settings_tab(runtime, state)

        def on_unload(request: gr.Request):
            # the tab was closed: its files go now, not when the state expires
            remove_session_folders(runtime.settings, request.session_hash)

        demo.unload(on_unload)
        demo.load(lambda: runtime.answering(), None, answering, api_name=False, concurrency_limit=None)
    return demo
