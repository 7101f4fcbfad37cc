"""`worldsim.App`: the whole worldsim page for any set of models, so that a Space for your own
world model is an app.py of a few lines:

    import worldsim

    worldsim.App(models=["hf://me/my-world-model", "cartpole"]).launch()

The models are shipped names, plugin names, hf:// ids or checkpoint folders; by default every
shipped and plugin model (and WORLDSIM_HUB_MODELS). This repository's app.py is exactly that.
Handlers live in worldsim.app.handlers and are tested there; this module only lays out the page.
"""

from __future__ import annotations

import gradio as gr
import torch

from worldsim.app import handlers, showcase, webplay
from worldsim.app.play import KEY_ROLES
from worldsim.envs.actions import ACTION_FILE_TYPES
from worldsim.media.images import CLIP_TYPES
from worldsim.models.catalog import model_entries

DEFAULT_INTRO = """
# worldsim
A small neural network watched a game being played and now dreams it, frame by frame: here beside
the real simulator, given the same actions.
"""

HOW_IT_WORKS = """
A small neural network watched an environment being played and learned how it moves. Give it a
**start frame** and **actions**: it imagines the video frame by frame, without the simulator.
When the start frame comes from the simulator (an example, a model above, or *Start from
simulator*), the real environment plays the same actions beside the model, and the PSNR says how
close the dream stays (against copying the start frame, which is what "nothing moves" would score).
**Play** steps the model live with your keys. **Present** shows only the dreams, large, for a room.
"""

# Gradio's file drop zones: at 60 px their label covered "Drop File Here" and hid "Click to Upload".
DROP_ZONE_HEIGHT = 120

LAUNCH = {
    "show_error": True,  # users read our messages, not "Error"
    "max_file_size": f"{handlers.MAX_UPLOAD_MB}mb",
    "head": handlers.PLAY_KEYS_SCRIPT + webplay.head(),
    # Same-origin files for play in the page: onnxruntime-web and each model's ONNX graphs.
    # and the showcase's cached clips (worldsim.app.showcase).
    "app_kwargs": {"routes": webplay.routes() + showcase.routes()},
    "css": showcase.CSS,  # the showcase, presentation mode, the phone layout (Gradio 6: launch's css)
    "mcp_server": True,  # /rollout and /compare as MCP tools at /gradio_api/mcp/sse
}


class App:
    """The worldsim page, for the models given."""

    def __init__(self, models: list[str] | None = None, title: str = "worldsim", intro: str = DEFAULT_INTRO):
        entries = model_entries(models or [])
        if models:  # only those asked for, in that order
            wanted = [str(m).strip() for m in models]
            by_location = {e.location: e for e in entries} | {e.name: e for e in entries}
            entries = [by_location[m] for m in wanted if m in by_location] or entries
        handlers.use_catalog(entries)
        self.title, self.intro = title, intro
        # Every model's dream beside reality: read from the cache now, rendered at launch if missing.
        self.showcase = showcase.Showcase(entries, handlers.default_model(handlers.picker_models()))
        self.showcase.scan()
        self.blocks = self.build()

    def build(self) -> gr.Blocks:
        models = handlers.picker_models()
        first_model = handlers.default_model(models)
        # Gradio keeps a copy of every video it serves: delete copies older than an hour, every 10 minutes.
        with gr.Blocks(title=self.title, delete_cache=(600, 3600)) as demo:
            gr.Markdown(self.intro, elem_id="intro")
            showcase_view = gr.HTML(
                self.showcase.page_html, elem_id="showcase", js_on_load=showcase.JS_ON_LOAD
            )
            showcase_timer = gr.Timer(1.0)  # until every clip is rendered (once per cache)
            opened_tab = gr.State(None)  # which tab a click on the showcase opened
            with gr.Accordion("How it works", open=False, elem_id="how-it-works"):
                gr.Markdown(HOW_IT_WORKS)
            rollout_state = gr.State(None, time_to_live=1800)  # the tab's last video, for exports
            play_state = gr.State(None, time_to_live=1800)  # the tab's live game (server engine)
            game_start = gr.State(None, time_to_live=1800)  # what the tab's game started from
            game_rollout = gr.State(None, time_to_live=1800)  # its check against reality
            clip_state = gr.State(None)  # a GIF/MP4 start clip, when one was uploaded
            with gr.Row():
                with gr.Column(scale=2):
                    model = gr.Dropdown(models, value=first_model, label="Model")
                    with gr.Accordion("What this model accepts", open=False, elem_id="model-about"):
                        about = gr.Markdown(
                            handlers.describe_model(first_model) if models else "No models shipped."
                        )
                    # On a phone these start folded (showcase.FOLD_ON_NARROW_JS): a tap opens each.
                    with gr.Accordion("Start frame", elem_id="start-section") as start_section:
                        start = handlers.start_frame_input(
                            label="Start frame",
                            sources=["upload", "clipboard"],
                            height=220,
                            elem_id="start-frame",
                        )
                        clip = gr.File(
                            label="Or a start clip (its last frames are the context)",
                            file_types=list(CLIP_TYPES),
                            height=DROP_ZONE_HEIGHT,
                            elem_id="start-clip",
                        )
                    simulator_section = gr.Accordion("Start from the simulator", elem_id="simulator-section")
                    with simulator_section, gr.Row():
                        seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, scale=1)
                        from_simulator = gr.Button("Start from simulator", scale=1)
                        simulator_start = gr.Textbox(
                            label="Simulator start",
                            placeholder="unknown (uploaded frame)",
                            scale=2,
                            info="Where the start frame came from: 'seed 7' or 'seed 3 after right left'.",
                        )
                    with gr.Accordion("More models", elem_id="hub-section") as hub_section:
                        hub_id = gr.Textbox(
                            label="Load from the Hub", placeholder="hf://owner/name[@revision]"
                        )
                    with gr.Accordion("What the model sees", open=False):
                        seen = gr.Image(label="Model input", interactive=False, height=120)
                        familiarity = gr.Markdown(elem_id="familiarity")
                with gr.Column(scale=3), gr.Tabs(elem_id="main-tabs") as tabs:
                    with gr.Tab("Roll out", id="rollout"):
                        actions = gr.Textbox(
                            label="Actions", placeholder="right*10 left*10 right*10", lines=2
                        )
                        action_summary = gr.Markdown(elem_id="action-summary")
                        with gr.Row():
                            action_buttons = [
                                gr.Button(visible=False, size="sm") for _ in range(handlers.MAX_BUTTONS)
                            ]
                        with gr.Row():
                            action_file = gr.File(
                                label="Action file",
                                file_types=list(ACTION_FILE_TYPES),
                                height=DROP_ZONE_HEIGHT,
                                scale=2,
                                elem_id="action-file",
                            )
                            samples = gr.Slider(
                                1,
                                handlers.MAX_SAMPLES,
                                value=1,
                                step=1,
                                label="Samples",
                                scale=1,
                                elem_id="samples",
                            )
                        with gr.Row():
                            roll = gr.Button("Roll out", variant="primary", scale=3)
                            stop = gr.Button("Stop", variant="stop", scale=1)
                        video = gr.Video(
                            label="Predicted video", autoplay=True, loop=True, height=420, elem_id="video"
                        )
                        summary = gr.Markdown(elem_id="summary")
                        psnr_plot = gr.LinePlot(
                            x="step",
                            y="PSNR (dB)",
                            label="PSNR against the simulator per step: the model (blue), copying the "
                            "start frame (orange); higher is better",
                            height=260,
                            **handlers.PSNR_PLOT_COLOURS,
                        )
                        with gr.Accordion("Export", open=False):
                            with gr.Row():
                                gif_button = gr.Button("GIF")
                                session_button = gr.Button("Session file")
                                load_session_file = gr.File(
                                    label="Load a session",
                                    file_types=[".json"],
                                    height=DROP_ZONE_HEIGHT,
                                    elem_id="session-file",
                                )
                            export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
                            scrubber = gr.Slider(0, 1, value=0, step=1, label="Frame")
                            still = gr.Image(
                                label="Frame (download as PNG)",
                                format="png",
                                interactive=False,
                                elem_id="still",
                            )
                    with gr.Tab("Play", id="play"):
                        play_engine = gr.Radio(
                            list(webplay.ENGINES.values()),
                            value=webplay.ENGINES["browser"],
                            label="The model runs",
                            elem_id="play-engine",
                        )
                        play_game = gr.HTML(webplay.config_html(None), elem_id="webplay-config")
                        with gr.Column(elem_id="play-frame"):
                            gr.HTML(webplay.GAME_HTML, elem_id="webplay-host")
                            play_view = gr.HTML(elem_id="play-server-frame")
                        with gr.Column(visible=False, elem_id="server-play") as server_play:
                            gr.Markdown(
                                "Press **arrow keys / WASD / space** (or the buttons) to step the model on "
                                "the server. Drag the timeline to go back; the next key branches from there."
                            )
                            with gr.Row():
                                key_buttons = {
                                    role: gr.Button(
                                        f"{handlers.KEY_LABELS[role]}", elem_id=f"play-{role}", size="sm"
                                    )
                                    for role in KEY_ROLES
                                }
                            timeline = gr.Slider(0, 1, value=0, step=1, label="Timeline")
                            play_status = gr.Markdown(elem_id="play-status")
                            with gr.Row():
                                play_restart = gr.Button("Restart", size="sm")
                                play_undo = gr.Button("Undo", size="sm")
                                play_save = gr.Button("Save as video", size="sm")
                        with gr.Row():
                            game_check = gr.Button("Check against reality", variant="primary", size="sm")
                            game_mp4 = gr.Button("Game as MP4", size="sm")
                            game_session_button = gr.Button("Session file", size="sm")
                        game_actions = gr.Textbox(visible=False)  # filled by the page's game
                        play_video = gr.Video(label="Played video", height=260, elem_id="play-video")
                        game_summary = gr.Markdown(elem_id="play-check-summary")
                        game_plot = gr.LinePlot(
                            x="step",
                            y="PSNR (dB)",
                            label="PSNR of the dream against reality per step (blue), copying the start "
                            "frame (orange); higher is better",
                            height=220,
                            **handlers.PSNR_PLOT_COLOURS,
                        )
                        game_file = gr.File(label="Download", interactive=False, elem_id="play-file")
                    with gr.Tab("Compare models"):
                        other_model = gr.Dropdown(models, value=first_model, label="Second model")
                        compare = gr.Button("Compare", variant="primary")
                        compare_video = gr.Video(
                            label="Both models", autoplay=True, loop=True, height=420, elem_id="compare-video"
                        )
                        compare_summary = gr.Markdown(elem_id="compare-summary")
                    with gr.Tab("Model card"):
                        card = gr.Markdown(
                            handlers.model_card(first_model) if models else "", elem_id="model-card"
                        )
            gr.Examples(
                examples=handlers.examples(),
                inputs=[model, start, actions, simulator_start],
                outputs=[video, summary, psnr_plot, rollout_state],
                fn=handlers.rollout_video,
                run_on_click=True,
                cache_examples=False,
                label="Examples (start frames from the real simulator): one click to a video",
            )

            private = {"api_visibility": "private"}
            showcase_timer.tick(
                self.showcase.refresh,
                showcase_view,
                [showcase_view, showcase_timer],
                show_progress="hidden",
                concurrency_limit=None,
                **private,
            )
            # A card (or the flagship's buttons) opens that model in Roll out or Play, from its example.
            showcase_view.click(
                self.showcase.open_example,
                None,
                [model, start, actions, simulator_start, tabs, opened_tab],
                js=showcase.SCROLL_TO_TABS_JS,
                **private,
            ).success(
                showcase.rollout_if_asked,
                [opened_tab, model, start, actions, simulator_start],
                [video, summary, psnr_plot, rollout_state],
                concurrency_limit=2,
                **private,
            )
            sections = [start_section, simulator_section, hub_section]
            demo.load(None, None, sections, js=showcase.FOLD_ON_NARROW_JS % len(sections), **private)
            model.change(handlers.describe_model, model, about, **private)
            model.change(handlers.model_card, model, card, **private)
            model.change(handlers.action_buttons, model, action_buttons, **private)
            model.change(handlers.play_controls, model, list(key_buttons.values()), **private)
            demo.load(handlers.action_buttons, model, action_buttons, **private)
            # what a model lacks is hidden, not broken: samples only where it samples
            gr.on([demo.load, model.change], handlers.sample_controls, model, samples, **private)
            # compared only within one environment: the second list offers what fits
            compare_with = [model, other_model]
            gr.on([demo.load, model.change], handlers.compare_choices, compare_with, other_model, **private)
            demo.load(handlers.play_controls, model, list(key_buttons.values()), **private)
            hub_id.submit(handlers.load_from_hub, hub_id, model, **private)
            start.upload(
                lambda: (handlers.UNKNOWN_START, None), None, [simulator_start, clip_state], **private
            )
            clip.upload(handlers.clip_start, [model, clip], [start, clip_state, simulator_start], **private)
            gr.on(
                [start.change, model.change],
                handlers.model_input,
                [model, start, clip_state],
                [seen, familiarity],
                **private,
            )
            from_simulator.click(
                handlers.start_from_simulator, [model, seed], [start, simulator_start], **private
            ).then(lambda: None, None, clip_state)
            # read for the chosen model: another model may not take the same actions, or as fast
            gr.on(
                [actions.change, model.change],
                handlers.describe_actions,
                [model, actions],
                action_summary,
                **private,
            )
            for button in action_buttons:
                button.click(handlers.append_action, [model, actions, button], actions, **private)
            action_file.upload(handlers.actions_from_file, [model, action_file], actions, **private)

            rolling = gr.on(
                [roll.click, actions.submit],
                handlers.rollout_video,
                inputs=[model, start, actions, simulator_start, samples, seed, clip_state],
                outputs=[video, summary, psnr_plot, rollout_state],
                api_name="rollout",
                concurrency_limit=2,  # two cores: more at once only slows everyone down
            )
            # A refused rollout: the last one's summary, plot and exports would stand as if its own.
            rolling.failure(lambda: ("", None, None), None, [summary, psnr_plot, rollout_state], **private)
            # Every new video (Roll out, an example, a loaded session) resets the frame scrubber.
            rollout_state.change(handlers.scrubber_range, rollout_state, [scrubber, still], **private)
            stop.click(None, cancels=[rolling])
            gif_button.click(handlers.export_gif, rollout_state, export_file, **private)
            session_button.click(handlers.save_session, rollout_state, export_file, **private)
            load_session_file.upload(
                handlers.load_session,
                load_session_file,
                [model, start, actions, simulator_start, samples, seed],
                **private,
            ).success(
                handlers.rollout_video,
                [model, start, actions, simulator_start, samples, seed],
                [video, summary, psnr_plot, rollout_state],
                **private,
            )
            scrubber.release(handlers.scrub, [rollout_state, scrubber], still, **private)

            play_outputs = [play_view, timeline, play_status, play_state]
            for role, button in key_buttons.items():
                button.click(
                    handlers.play_key,
                    [play_state, model, start, gr.State(role)],
                    play_outputs,
                    api_name=f"play_{role}",  # for scripts (loadtest); not an MCP tool: it keeps a game
                    api_visibility="undocumented",
                    concurrency_limit=4,  # a step is a few milliseconds
                )
            timeline.release(handlers.play_seek, [play_state, timeline], play_outputs, **private)
            play_undo.click(handlers.play_undo, play_state, play_outputs, **private)
            play_restart.click(handlers.play_restart, play_state, play_outputs, **private)
            play_save.click(handlers.play_save, play_state, play_video, **private)
            # One request per game: the page plays it (or the server, for models without ONNX).
            gr.on(
                [demo.load, start.change, model.change, play_engine.input],
                webplay.play_start,
                [model, start, simulator_start, clip_state, play_engine],
                [play_game, play_engine, game_start, *play_outputs, server_play],
                **private,
            )
            # The page's recorded actions go in through `js` (static/webplay.js keeps them).
            game_actions_js = "(s, a) => [s, window.worldsimPlay ? window.worldsimPlay.actionsText() : a]"
            game_check.click(
                webplay.check_game,
                [game_start, game_actions],
                [play_video, game_summary, game_plot, game_rollout],
                js=game_actions_js,
                concurrency_limit=2,
                **private,
            )
            game_mp4.click(
                webplay.game_video,
                [game_start, game_actions],
                play_video,
                js=game_actions_js,
                concurrency_limit=2,
                **private,
            )
            game_session_button.click(webplay.game_session, game_rollout, game_file, **private)

            compare.click(
                handlers.compare_models,
                [model, other_model, start, actions, simulator_start, clip_state],
                [compare_video, compare_summary],
                api_name="compare",
                concurrency_limit=2,
            )
        return demo

    def launch(self, **kwargs) -> None:
        """Serve the page (Gradio's launch arguments override ours)."""
        # One core per request, two requests at a time (concurrency_limit): two requests each
        # spinning two threads on two cores made a 4 ms play step take 120 ms (docs/performance.md).
        torch.set_num_threads(1)
        self.showcase.start()  # the clips missing from the cache, in the background
        self.blocks.queue(max_size=64).launch(**{**LAUNCH, **kwargs})
