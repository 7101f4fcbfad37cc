"""worldsim: upload a start frame, type actions, watch a learned world model imagine the video.

python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

import gradio as gr

from worldsim import demo as handlers

models = handlers.picker_models()

with gr.Blocks(title="worldsim") as demo:
    gr.Markdown(
        "# worldsim: learned world models in the browser\n"
        "A small neural network learned how this environment moves from recorded play. "
        "Give it a **start frame** and a sequence of **actions**; it imagines the video frame by frame, "
        "without running the simulator. When the start frame comes from the simulator (an example, or "
        "*Start from simulator*), the real environment plays the same actions beside the model."
    )
    with gr.Row():
        with gr.Column():
            with gr.Row():
                model = gr.Dropdown(models, value=models[0] if models else None, label="Model", scale=2)
                hub_id = gr.Textbox(
                    label="Load from the Hub", placeholder="hf://owner/name[@revision]", scale=2
                )
            about = gr.Markdown(handlers.describe_model(models[0]) if models else "No models shipped.")
            start = gr.Image(
                label="Start frame", type="filepath", sources=["upload", "clipboard"], height=240
            )
            with gr.Row():
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, scale=1)
                from_simulator = gr.Button("Start from simulator", scale=1)
                simulator_start = gr.Textbox(
                    label="Simulator start",
                    placeholder="unknown (uploaded frame)",
                    scale=2,
                    info="Where the start frame came from: 'seed 7' or 'seed 3 after right left'.",
                )
            actions = gr.Textbox(label="Actions", placeholder="right*10 left*10 right*10", lines=2)
            roll = gr.Button("Roll out", variant="primary")
        with gr.Column():
            video = gr.Video(label="Predicted video", autoplay=True, loop=True, height=480)
            summary = gr.Markdown()
            psnr_plot = gr.LinePlot(
                x="step",
                y="PSNR (dB)",
                color="series",
                label="Model vs simulator, per step (higher is better)",
                height=300,
            )
    gr.Examples(
        examples=handlers.examples(),
        inputs=[model, start, actions, simulator_start],
        outputs=[video, summary, psnr_plot],
        fn=handlers.rollout_video,
        run_on_click=True,
        cache_examples=False,
        label="Examples (start frames from the real simulator)",
    )

    model.change(handlers.describe_model, model, about, api_visibility="private")
    hub_id.submit(handlers.load_from_hub, hub_id, model, api_visibility="private")
    start.upload(lambda: handlers.UNKNOWN_START, None, simulator_start, api_visibility="private")
    from_simulator.click(
        handlers.start_from_simulator, [model, seed], [start, simulator_start], api_visibility="private"
    )
    gr.on(
        [roll.click, actions.submit],
        handlers.rollout_video,
        inputs=[model, start, actions, simulator_start],
        outputs=[video, summary, psnr_plot],
        api_name="rollout",
        concurrency_limit=2,  # two cores: more at once only slows everyone down
    )

if __name__ == "__main__":
    demo.queue(max_size=64).launch(show_error=True, max_file_size="20mb")
