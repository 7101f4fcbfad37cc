"""worldsim: upload a start frame, type actions, watch a learned world model imagine the video.

python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

import gradio as gr

from worldsim import demo as handlers

models = handlers.shipped_models()

with gr.Blocks(title="worldsim") as demo:
    gr.Markdown(
        "# worldsim: learned world models in the browser\n"
        "A small neural network learned how this environment moves from recorded play. "
        "Give it a **start frame** and a sequence of **actions**; it imagines the video frame by frame, "
        "without running the simulator. Pick an example below for a video in one click."
    )
    with gr.Row():
        with gr.Column():
            model = gr.Dropdown(models, value=models[0] if models else None, label="Model")
            about = gr.Markdown(handlers.describe_model(models[0]) if models else "No models shipped.")
            start = gr.Image(
                label="Start frame", type="filepath", sources=["upload", "clipboard"], height=240
            )
            actions = gr.Textbox(label="Actions", placeholder="right*10 left*10 right*10", lines=2)
            roll = gr.Button("Roll out", variant="primary")
        with gr.Column():
            video = gr.Video(label="Predicted video", autoplay=True, loop=True, height=320)
            summary = gr.Markdown()
    gr.Examples(
        examples=handlers.examples(),
        inputs=[model, start, actions],
        outputs=[video, summary],
        fn=handlers.rollout_video,
        run_on_click=True,
        cache_examples=False,
        label="Examples (start frames from the real simulator)",
    )

    model.change(handlers.describe_model, model, about, api_visibility="private")
    gr.on(
        [roll.click, actions.submit],
        handlers.rollout_video,
        inputs=[model, start, actions],
        outputs=[video, summary],
        api_name="rollout",
        concurrency_limit=2,  # two cores: more at once only slows everyone down
    )

if __name__ == "__main__":
    demo.queue(max_size=64).launch(show_error=True)
