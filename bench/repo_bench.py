#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark of the repository layer (issue 2), not a test.

Put and get through `ferry repo` against s3rver, side by side in one run with
`aws s3 cp` (Debian's awscli) and `curl --aws-sigv4`: a 16 MiB real-looking
file and a big stream (2 GiB by default) read from stdin. Prints medians,
MB/s, ratios (peer time / ferry time: > 1 means ferry is faster) and the peak
RSS of each tool on the big stream. Starts and stops its own s3rver.

    bench/repo_bench.py [--runs 5] [--big-runs 3] [--big-mib 2048]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRY = os.path.join(ROOT, 'build', 'ferry', 'ferry')
AWS = '/usr/bin/aws'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def real_looking(path, want):
    """Text and binaries from this machine, as a backup would see them."""
    n = 0
    with open(path, 'wb') as out:
        for top in ('/usr/share/doc', '/usr/lib/x86_64-linux-gnu', '/usr/share/perl5', '/usr/bin'):
            for d, _, fs in sorted(os.walk(top)):
                for f in sorted(fs):
                    p = os.path.join(d, f)
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    try:
                        with open(p, 'rb') as fh:
                            b = fh.read(want - n)
                    except OSError:
                        continue
                    out.write(b)
                    n += len(b)
                    if n >= want:
                        return


GEN = r'''
import sys
want = int(sys.argv[2]) << 20
blk = open(sys.argv[1], 'rb').read()
out = sys.stdout.buffer
n = i = 0
while n < want:
    # each round differs a little so nothing repeats exactly
    chunk = i.to_bytes(8, 'little') * 512 + blk[4096:]
    chunk = chunk[:want - n]
    out.write(chunk)
    n += len(chunk)
    i += 1
'''


def run(cmd, env):
    """Wall seconds and peak RSS (KiB, of the measured tool) of one shell pipeline."""
    t0 = time.monotonic()
    p = subprocess.run(['bash', '-o', 'pipefail', '-c', cmd], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit('bench: failed (%d): %s\n%s' % (p.returncode, cmd, p.stderr.decode()[-2000:]))
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--big-runs', type=int, default=3)
    ap.add_argument('--big-mib', type=int, default=2048)
    a = ap.parse_args()
    if not os.access(FERRY, os.X_OK):
        sys.exit('bench: build first (tools/test, or meson setup build && ninja -C build)')
    if not os.path.isdir(os.path.join(ROOT, 'node_modules', 's3rver')):
        subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=ROOT, check=True)
    w = tempfile.mkdtemp(prefix='ferry-bench-')
    port = free_port()
    ep = 'http://127.0.0.1:%d' % port
    bucket = 'bench'
    js = os.path.join(w, 's3rver.js')
    with open(js, 'w') as f:
        f.write("const S3rver = require('s3rver');\n"
                "new S3rver({port: %d, address: '127.0.0.1', directory: '%s/s3', silent: true,"
                " vhostBuckets: false, configureBuckets: [{name: '%s', configs: []}]}).run();\n"
                % (port, w, bucket))
    srv = subprocess.Popen(['node', js], env=dict(os.environ, NODE_PATH=os.path.join(ROOT, 'node_modules')),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, AWS_ACCESS_KEY_ID='S3RVER', AWS_SECRET_ACCESS_KEY='S3RVER',
                   AWS_DEFAULT_REGION='us-east-1', AWS_REQUEST_CHECKSUM_CALCULATION='when_required',
                   AWS_PAGER='', FERRY_REPO='s3://%s/ferry' % bucket, FERRY_S3_ENDPOINT=ep,
                   FERRY_LOG_LEVEL='warning')
        f16 = os.path.join(w, 'file16')
        real_looking(f16, 16 << 20)
        blk = os.path.join(w, 'block')
        real_looking(blk, 64 << 20)
        gen = os.path.join(w, 'gen.py')
        with open(gen, 'w') as f:
            f.write(GEN)
        out = os.path.join(w, 'out')
        curl_auth = "--aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER -H x-amz-content-sha256:UNSIGNED-PAYLOAD"
        res = {}

        def bench(name, runs, cmd, mib):
            times = [run(cmd, env) for _ in range(runs)]
            med = statistics.median(times)
            res[name] = med
            print('  %-26s median %7.3f s  %8.1f MB/s   runs: %s' % (
                name, med, mib * 1.048576 / med, ' '.join('%.2f' % t for t in times)), flush=True)

        print('== 16 MiB real-looking file, %d runs each, s3rver %s' % (a.runs, ep))
        bench('ferry put (zstd)', a.runs, '%s repo put --force f16z %s' % (FERRY, f16), 16)
        bench('ferry put (raw)', a.runs, '%s repo put --force --raw f16r %s' % (FERRY, f16), 16)
        bench('aws s3 cp put', a.runs, '%s --endpoint-url %s s3 cp %s s3://%s/aws/f16' % (AWS, ep, f16, bucket), 16)
        bench('curl put', a.runs, 'curl -sf -T %s %s %s/%s/curl/f16' % (f16, curl_auth, ep, bucket), 16)
        bench('ferry get (zstd)', a.runs, '%s repo get f16z %s.a' % (FERRY, out), 16)
        bench('ferry get (raw)', a.runs, '%s repo get --raw f16r %s.b' % (FERRY, out), 16)
        bench('aws s3 cp get', a.runs, '%s --endpoint-url %s s3 cp s3://%s/aws/f16 %s.c' % (AWS, ep, bucket, out), 16)
        bench('curl get', a.runs, 'curl -sf -o %s.d %s %s/%s/curl/f16' % (out, curl_auth, ep, bucket), 16)
        for s in 'abcd':
            if subprocess.run(['cmp', '-s', f16, out + '.' + s]).returncode != 0:
                sys.exit('bench: output %s differs from the input' % s)

        big = a.big_mib
        print('== %d MiB stream through a pipe, %d runs each (peak RSS of the tool itself)' % (big, a.big_runs))
        g = 'python3 %s %s %d' % (gen, blk, big)
        rss = {}

        def timed(name, cmd):
            rf = os.path.join(w, 'rss.' + name.replace(' ', '_').replace('(', '').replace(')', ''))
            bench(name, a.big_runs, cmd.replace('TIME', '/usr/bin/time -f %%M -o %s' % rf), big)
            with open(rf) as fh:
                rss[name] = int(fh.read().split()[-1])

        timed('ferry put (zstd) big', '%s | TIME %s repo put --force big -' % (g, FERRY))
        timed('ferry put (raw) big', '%s | TIME %s repo put --force --raw bigr -' % (g, FERRY))
        timed('aws s3 cp put big', '%s | TIME %s --endpoint-url %s s3 cp - s3://%s/aws/big' % (g, AWS, ep, bucket))
        timed('ferry get (zstd) big', 'TIME %s repo get big - | sha256sum > %s.sf' % (FERRY, out))
        timed('ferry get (raw) big', 'TIME %s repo get --raw bigr - | sha256sum > %s.sr' % (FERRY, out))
        timed('aws s3 cp get big', 'TIME %s --endpoint-url %s s3 cp s3://%s/aws/big - | sha256sum > %s.sa' % (AWS, ep, bucket, out))
        run('%s | sha256sum > %s.sg' % (g, out), env)
        sums = {s: open(out + '.' + s).read().split()[0] for s in ('sf', 'sr', 'sa', 'sg')}
        if len(set(sums.values())) != 1:
            sys.exit('bench: big stream checksums differ: %s' % sums)

        print('== ratios (peer median / ferry median; > 1: ferry faster)')
        for op in ('put', 'get'):
            for mode in ('zstd', 'raw'):
                f = res['ferry %s (%s)' % (op, mode)]
                print('  16 MiB %s (%s): vs aws s3 cp %.2fx, vs curl %.2fx' % (
                    op, mode, res['aws s3 cp %s' % op] / f, res['curl %s' % op] / f))
                fb = res['ferry %s (%s) big' % (op, mode)]
                print('  %d MiB %s (%s): vs aws s3 cp %.2fx' % (big, op, mode, res['aws s3 cp %s big' % op] / fb))
        print('== peak RSS on the big stream (goal for ferry: <= 64 MiB)')
        for k, v in rss.items():
            print('  %-26s %7.1f MiB' % (k, v / 1024))
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == '__main__':
    main()
