"""A FastAPI app whose page calls its own JSON API (a POST that needs a CORS preflight from the
sandbox) and its own websocket, then shows what came back. Listens on $PORT_WEB."""

import os

import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse

PAGE = """<!doctype html><html><head><title>items</title></head><body><p id="out">loading</p><script>
(async () => {
  const reply = await fetch('items', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                      body: JSON.stringify({name: 'gpu', n: 2})});
  const item = await reply.json();
  const ws = new WebSocket(location.href.replace(/^http/, 'ws').replace(/[?#].*$/, '') + 'ws');
  ws.onopen = () => ws.send('hello');
  ws.onmessage = e => { document.getElementById('out').textContent = `saved ${item.name} x${item.n}; ws ${e.data}`; };
})();
</script></body></html>"""

app = FastAPI()


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return PAGE


@app.post("/items")
async def items(item: dict) -> dict:
    return {"name": item["name"], "n": item["n"] * 1}


@app.websocket("/ws")
async def ws(socket: WebSocket) -> None:
    await socket.accept()
    await socket.send_text((await socket.receive_text()).upper())
    await socket.close()


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT_WEB"]), log_level="warning")
