"""Write twenty steps of a `loss` scalar as TensorBoard event files (with tensorboard's own
writer, no TensorFlow), then serve them with TensorBoard on $PORT_TB."""

import os
import sys
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

writer = EventFileWriter("runs/train")
for step in range(20):
    value = summary_pb2.Summary.Value(tag="loss", simple_value=1.0 / (step + 1))
    writer.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary_pb2.Summary(value=[value])))
writer.close()
os.execv(sys.executable, [sys.executable, "-m", "tensorboard.main", "--logdir", "runs", "--host", "127.0.0.1",
                          "--port", os.environ["PORT_TB"]])
