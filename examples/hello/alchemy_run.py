"""A tiny app on the `fs` provider: a folder and two files, one depending on the other."""

import alchemy_nb
from alchemy_nb.fs import File, Folder

app = alchemy_nb.App("hello")


@app.program
def infra(stage):
    out = Folder("out", path=f"out/{stage.name}")
    greeting = File(
        "greeting",
        path=f"out/{stage.name}/hello.txt",
        content=f"hello from {stage.name}\n",
    )
    # `greeting.path` is a reference: the index depends on the greeting file.
    index = File("index", path=f"out/{stage.name}/index.txt", content=greeting.path)
    return {"folder": out.path, "greeting": greeting.path, "index": index.path}
