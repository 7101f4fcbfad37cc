"""worldsim: upload a start frame, type actions, watch a learned world model imagine the video.

python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)

This repository's Space: every shipped model, and those of installed plugins. A Space for your
own model is the same two lines with `worldsim.App(models=[...])`.
"""

import worldsim

app = worldsim.App()
demo = app.blocks

if __name__ == "__main__":
    app.launch()
