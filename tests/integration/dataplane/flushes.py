"""flushes.py WRITER DIR: opens a new 1 MiB disk in DIR over `WRITER --stdio`,
then sends 8 FLUSHes in one write (raw frames, proto/dataplane.md); prints
the replies in order as TYPE:ID, or "timeout after ..." when the 9 replies
do not come within 10 s."""
import os, select, struct, subprocess, sys, time

w, d = sys.argv[1], sys.argv[2]
def frame(t, i, body=b""):
    return struct.pack("<4sBBHQII", b"EKDP", 1, t, 0, i, len(body), 0) + body
path = os.path.join(d, "flush.img").encode()
req = frame(1, 1, struct.pack("<QIHH", 1 << 20, 3, len(path), 0) + path)
req += b"".join(frame(3, 2 + k) for k in range(8))
p = subprocess.Popen([w, "--stdio", "--allow-path", d, "--log-level", "error"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
p.stdin.write(req); p.stdin.flush()
buf, out, end = b"", [], time.time() + 10
while len(out) < 9 and time.time() < end:
    if select.select([p.stdout], [], [], 0.2)[0]:
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk: break
        buf += chunk
    while len(buf) >= 24:
        _, _, t, _, i, n, _ = struct.unpack("<4sBBHQII", buf[:24])
        if len(buf) < 24 + n: break
        out.append("%02x:%d" % (t, i)); buf = buf[24 + n:]
p.kill(); p.wait()
print(" ".join(out) if len(out) == 9 else "timeout after %s" % " ".join(out))
