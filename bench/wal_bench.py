#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""WAL archive/restore benchmark of issue 3, not a test.

ferry-wal-push / ferry-wal-fetch side by side with pgBackRest, barman-cloud
and `aws s3 cp`, in one run, against ONE s3rver process served on http and
https (pgBackRest 2.45 speaks S3 over TLS only), with the same real 16 MiB
WAL segments made by PostgreSQL 15 under pgbench. Every tool is called as
PostgreSQL calls it: one process per segment, sequentially, in order, as the
postgres user, with the data directory as the working directory.

    bench/wal_bench.py [--build build] [--rounds 5] [--slow-rounds 1] [--nseg 32]
                       [--scratch /tmp/ferry-wal-bench] [--only VARIANT,...]
                       [--no-recovery] [--regen-wal]

Run as root (PostgreSQL and pgBackRest run as the postgres user; so does
every tool here, for fairness). Needs Debian's postgresql-15, pgbackrest,
barman-cli-cloud, awscli, and s3rver from the root package.json (npm ci).
The WAL fixture (and a base backup taken just before it) is made once and
cached under --scratch; --regen-wal makes a new one. Prints a markdown
report (also written to SCRATCH/results/report.md, per-call times in
SCRATCH/results/calls.tsv).

Beside the rates, the report gives the CPU time of each timed round for the
whole machine (from /proc/stat) and for s3rver (from /proc/PID/stat), per
segment: on a machine whose CPUs are all busy, no tool can go faster than
CPUs / (CPU seconds per segment), and the goals are checked against that.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, 'bench', 'wal')
PGBIN = '/usr/lib/postgresql/15/bin'
AWS = '/usr/bin/aws'  # Debian's awscli v2 (a pyenv shim may shadow `aws` on PATH)
BUCKET = 'walbench'
SEGRE = re.compile(r'^[0-9A-F]{24}$')
KEY = 'S3RVER'  # s3rver's built-in credentials

# variant -> (label, group). http/https says how that tool reaches s3rver.
PUSH = {
    'ferry-sync': ('ferry-wal-push --lookahead 0 (http)', 'ferry'),
    'ferry-la': ('ferry-wal-push, look-ahead (http)', 'ferry'),
    'ferry-sync-tls': ('ferry-wal-push --lookahead 0 (https)', 'ferry'),
    'ferry-la-tls': ('ferry-wal-push, look-ahead (https)', 'ferry'),
    'ferry-la-tls-z3': ('ferry-wal-push, look-ahead, --compress-level 3 (https)', 'ferry'),
    'ferry-la-tls-j8': ('ferry-wal-push, look-ahead, --lookahead-jobs 8 (https)', 'ferry'),
    'pgbr-zst': ('pgbackrest archive-push sync, zst (https)', 'peer'),
    'pgbr-async': ('pgbackrest archive-push async, zst, process-max=2 (https)', 'peer'),
    'barman': ('barman-cloud-wal-archive (http)', 'peer'),
    'aws': ('aws s3 cp (http)', 'peer'),
}
GET = {
    'ferry-sync': ('ferry-wal-fetch --prefetch 0 (http)', 'ferry'),
    'ferry-pf': ('ferry-wal-fetch, prefetch (http)', 'ferry'),
    'ferry-sync-tls': ('ferry-wal-fetch --prefetch 0 (https)', 'ferry'),
    'ferry-pf-tls': ('ferry-wal-fetch, prefetch (https)', 'ferry'),
    'pgbr-zst': ('pgbackrest archive-get sync (https)', 'peer'),
    'pgbr-async': ('pgbackrest archive-get async, process-max=2 (https)', 'peer'),
    'barman': ('barman-cloud-wal-restore (http)', 'peer'),
    'aws': ('aws s3 cp (http)', 'peer'),
}
# the Python tools take ~1 s per call: fewer rounds of them (--slow-rounds)
SLOW = ('barman', 'aws')
# where each restore variant reads from (the push variant's repository)
GET_FROM = {'ferry-sync': 'ferry-la', 'ferry-pf': 'ferry-la', 'ferry-sync-tls': 'ferry-la-tls',
            'ferry-pf-tls': 'ferry-la-tls', 'pgbr-zst': 'pgbr-zst', 'pgbr-async': 'pgbr-async',
            'barman': 'barman', 'aws': 'aws'}
# whole PostgreSQL recoveries: variant -> (label, repository it reads)
RECOVERY = {
    'ferry-sync': ('ferry-wal-fetch --prefetch 0 (http)', 'ferry-la'),
    'ferry-pf': ('ferry-wal-fetch, prefetch (http)', 'ferry-la'),
    'ferry-pf-tls': ('ferry-wal-fetch, prefetch (https)', 'ferry-la-tls'),
    'pgbr-zst': ('pgbackrest archive-get sync (https)', 'pgbr-zst'),
    'pgbr-async': ('pgbackrest archive-get async, process-max=2 (https)', 'pgbr-async'),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


# what bench/wal/floor.c measures, per phase
FLOOR_WORK = {'push': 'read, SHA-256, zstd',
              'get': 'zstd decoding with its checksum, the spool file\'s write'}


class Bench:
    def __init__(self, a):
        self.a = a
        self.S = os.path.abspath(a.scratch)
        self.W = os.path.join(self.S, 'work')
        self.OUT = os.path.join(self.S, 'results')
        self.FIX = os.path.join(self.S, 'wal')  # segments + pg_control + PG_VERSION
        self.PG = os.path.join(self.S, 'pg')  # the generating cluster and its archive
        self.BASE = os.path.join(self.S, 'base')  # base backup taken just before the fixture
        self.user = 'postgres' if os.geteuid() == 0 else None
        build = os.path.join(ROOT, a.build)
        self.push_bin = os.path.join(build, 'wal-push', 'ferry-wal-push')
        self.floor_bin = os.path.join(build, 'bench', 'wal-floor')
        self.fetch_bin = os.path.join(build, 'wal-fetch', 'ferry-wal-fetch')
        self.port = free_port()
        self.tls_port = free_port()
        self.ep = 'http://127.0.0.1:%d' % self.port
        self.tls_ep = 'https://127.0.0.1:%d' % self.tls_port
        self.cert = os.path.join(self.S, 's3tls.crt')
        self.calls = []  # (phase, variant, round, seg, seconds, rc)
        self.rounds = {}  # (phase, variant) -> [round wall seconds]
        self.cpu_rounds = {}  # (phase, variant) -> [(machine busy CPU s, s3rver CPU s) of a round]
        self.errors = {}
        self.srv = None
        self.floor_cpu = None  # (push, fetch) CPU s per segment of bench/wal/floor.c

    # ------------------------------------------------------------ helpers
    def chown(self, path):
        if self.user:
            subprocess.run(['chown', '-R', '%s:%s' % (self.user, self.user), path], check=True)

    def base_env(self):
        home = os.path.join(self.S, 'home')
        return {
            'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': home, 'LANG': 'C.UTF-8',
            'AWS_ACCESS_KEY_ID': KEY, 'AWS_SECRET_ACCESS_KEY': KEY, 'AWS_DEFAULT_REGION': 'us-east-1',
            'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_PAGER': '',
        }

    def ferry_env(self, repo, tls):
        e = self.base_env()
        e.update(FERRY_REPO='s3://%s/%s' % (BUCKET, repo), FERRY_LOG_LEVEL='warning',
                 FERRY_S3_ENDPOINT=self.tls_ep if tls else self.ep, FERRY_S3_NO_IMDS='1')
        if tls:
            e['FERRY_S3_CA_FILE'] = self.cert
        return e

    def sh(self, cmd, env=None, cwd=None, check=True, quiet=True):
        """Run a command as the postgres user (when root)."""
        p = subprocess.run(cmd, env=env or self.base_env(), cwd=cwd, user=self.user,
                           stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT)
        if check and p.returncode != 0:
            out = p.stdout.decode(errors='replace')[-3000:] if p.stdout else ''
            sys.exit('bench: failed (%d): %s\n%s' % (p.returncode, ' '.join(cmd), out))
        return p

    def timed(self, cmd, env, cwd):
        # stderr to a file, not a pipe: like PostgreSQL's archiver and startup process, the
        # bench waits for the command itself, not for what it leaves running in the background
        # (pgBackRest's async process, ferry's detached look-ahead and prefetch), which keep
        # a pipe open.
        with tempfile.TemporaryFile() as errf:
            t0 = time.monotonic()
            p = subprocess.run(cmd, env=env, cwd=cwd, user=self.user, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=errf)
            dt = time.monotonic() - t0
            errf.seek(0)
            return dt, p.returncode, errf.read().decode(errors='replace').strip()

    def cpu_now(self):
        """CPU seconds so far: the whole machine's busy time, and the s3rver process's."""
        hz = os.sysconf('SC_CLK_TCK')
        with open('/proc/stat') as f:
            v = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        with open('/proc/%d/stat' % self.srv.pid) as f:
            st = f.read().rsplit(')', 1)[1].split()
        return (sum(v) - v[3] - v[4]) / hz, (int(st[11]) + int(st[12])) / hz  # utime + stime

    def cpu_since(self, c0):
        """(machine, s3rver) CPU seconds since c0, a cpu_now() result."""
        c1 = self.cpu_now()
        return c1[0] - c0[0], c1[1] - c0[1]

    def harness_call(self, n=50):
        """One call of /bin/true made as the tools' calls are: (median wall s, machine CPU s)."""
        c0 = self.cpu_now()
        ts = [self.timed(['/bin/true'], self.base_env(), self.S)[0] for _ in range(n)]
        return statistics.median(ts), self.cpu_since(c0)[0] / n

    def floor(self):
        """bench/wal/floor.c on the segments: (push, fetch) CPU s per segment of ferry's per-byte
        work alone (one thread, no process, no network), or None without the program."""
        if not os.access(self.floor_bin, os.X_OK):
            return None
        out = subprocess.run([self.floor_bin, '--rounds', '3', self.W]
                             + [os.path.join(self.FIX, s) for s in self.segs],
                             stdout=subprocess.PIPE, check=True).stdout.decode().split()
        return float(out[1]) / 1e3, float(out[3]) / 1e3

    def lingering(self, dirs, words):
        """Pids of processes working in one of dirs or naming one of words (async helpers)."""
        pids = []
        for pid in os.listdir('/proc'):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                cwd = os.readlink('/proc/%s/cwd' % pid)
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    cmd = f.read().decode(errors='replace')
            except OSError:
                continue
            if any(cwd == d or cwd.startswith(d + '/') for d in dirs) or any(w and w in cmd for w in words):
                pids.append(int(pid))
        return pids

    def quiesce(self, dirs, words=(), limit=120):
        """Wait until the async helpers of a variant are gone (never timed)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if not self.lingering(dirs, words):
                return
            time.sleep(0.1)
        for pid in self.lingering(dirs, words):
            log('bench: killing lingering pid %d' % pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass

    # ---------------------------------------------------------- s3 server
    def start_s3(self):
        if not os.path.isdir(os.path.join(ROOT, 'node_modules', 's3rver')):
            subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=ROOT, check=True)
        if not os.path.exists(self.cert):
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30',
                            '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                            '-keyout', os.path.join(self.S, 's3tls.key'), '-out', self.cert],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.chmod(self.cert, 0o644)
        self.s3dir = os.path.join(self.S, 's3')
        shutil.rmtree(self.s3dir, ignore_errors=True)
        os.makedirs(self.s3dir)
        self.srvlog = open(os.path.join(self.OUT, 's3rver.log'), 'w')
        self.srv = subprocess.Popen(
            ['node', os.path.join(HERE, 's3server.js'), self.s3dir, '127.0.0.1', str(self.port),
             str(self.tls_port), os.path.join(self.S, 's3tls.key'), self.cert, BUCKET],
            env=dict(os.environ, NODE_PATH=os.path.join(ROOT, 'node_modules')),
            stdout=self.srvlog, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', self.tls_port), 0.2).close()
                socket.create_connection(('127.0.0.1', self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit('bench: s3rver did not start (see %s)' % self.srvlog.name)

    def stop_s3(self):
        if self.srv:
            self.srv.terminate()
            self.srv.wait()

    # ------------------------------------------------------- WAL fixture
    def pg(self, *args, env=None, check=True):
        return self.sh([os.path.join(PGBIN, args[0])] + list(args[1:]), env=env, check=check)

    def fixture_ok(self):
        try:
            segs = [f for f in os.listdir(self.FIX) if SEGRE.match(f)]
        except OSError:
            return False
        return (len(segs) >= self.a.nseg and os.path.exists(os.path.join(self.FIX, 'global', 'pg_control'))
                and os.path.exists(os.path.join(self.BASE, 'backup_label')))

    def make_fixture(self):
        """initdb PG15, take a base backup, then pgbench until nseg segments follow it."""
        log('generating the WAL fixture with PostgreSQL 15 + pgbench (once; cached in %s)' % self.FIX)
        for d in (self.PG, self.FIX, self.BASE):
            if os.path.exists(os.path.join(d, 'data', 'postmaster.pid')):
                self.pg('pg_ctl', '-D', os.path.join(d, 'data'), '-m', 'immediate', 'stop', check=False)
            shutil.rmtree(d, ignore_errors=True)
        data, arch = os.path.join(self.PG, 'data'), os.path.join(self.PG, 'archive')
        os.makedirs(arch)
        os.makedirs(self.BASE)
        self.chown(self.PG)
        self.chown(self.BASE)
        self.pg('initdb', '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C')
        port = free_port()
        with open(os.path.join(data, 'postgresql.conf'), 'a') as f:
            f.write("listen_addresses = ''\nport = %d\nunix_socket_directories = '%s'\n"
                    "wal_level = replica\narchive_mode = on\n"
                    "archive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'\n"
                    "max_wal_size = 4GB\ncheckpoint_timeout = 30min\nshared_buffers = 256MB\n"
                    % (port, self.PG, arch, arch))
        self.pg('pg_ctl', '-D', data, '-l', os.path.join(self.PG, 'server.log'), '-w', 'start')
        conn = ['-h', self.PG, '-p', str(port), '-U', 'postgres']
        try:
            # the base backup comes first, so that the fixture is all the WAL a
            # recovery from it needs: bulk load (COPY), index build, then OLTP
            self.pg('pg_basebackup', *conn, '-D', self.BASE, '-X', 'fetch', '-c', 'fast')
            with open(os.path.join(self.BASE, 'backup_label')) as f:
                first = re.search(r'\(file ([0-9A-F]{24})\)', f.read()).group(1)
            self.pg('pgbench', *conn, '-i', '-s', '10', '-q', 'postgres')
            for i in range(40):
                segs = sorted(s for s in os.listdir(arch) if SEGRE.match(s) and s >= first)
                if len(segs) >= self.a.nseg:
                    break
                self.pg('pgbench', *conn, '-c', '4', '-j', '2', '-T', '10', 'postgres')
                self.pg('psql', *conn, '-qAtc', 'checkpoint', 'postgres')
                self.pg('psql', *conn, '-qAtc', 'select pg_switch_wal()', 'postgres')
                time.sleep(1)
        finally:
            self.pg('pg_ctl', '-D', data, '-m', 'fast', '-w', 'stop', check=False)
        segs = sorted(s for s in os.listdir(arch) if SEGRE.match(s) and s >= first)[:self.a.nseg]
        if len(segs) < self.a.nseg:
            sys.exit('bench: only %d segments after the base backup' % len(segs))
        os.makedirs(os.path.join(self.FIX, 'global'))
        for s in segs:
            shutil.copy(os.path.join(arch, s), self.FIX)
        shutil.copy(os.path.join(data, 'global', 'pg_control'), os.path.join(self.FIX, 'global'))
        shutil.copy(os.path.join(data, 'PG_VERSION'), self.FIX)
        self.chown(self.FIX)

    def segments(self):
        return sorted(f for f in os.listdir(self.FIX) if SEGRE.match(f))[:self.a.nseg]

    # ------------------------------------------------------------ pgBackRest
    def pgbr_conf(self, variant, r, phase, pgdata):
        d = os.path.join(self.W, 'pgbr', '%s-%s-r%d' % (phase, variant, r))
        for sub in ('log', 'lock', 'spool'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        cfg = os.path.join(d, 'pgbackrest.conf')
        with open(cfg, 'w') as f:
            f.write('[global]\nrepo1-type=s3\nrepo1-path=/r%d/%s\nrepo1-s3-endpoint=localhost\n'
                    'repo1-storage-port=%d\nrepo1-storage-ca-file=%s\nrepo1-s3-uri-style=path\n'
                    'repo1-s3-bucket=%s\nrepo1-s3-region=us-east-1\nrepo1-s3-key=%s\n'
                    'repo1-s3-key-secret=%s\ncompress-type=zst\nlog-path=%s/log\nlock-path=%s/lock\n'
                    'spool-path=%s/spool\nlog-level-console=warn\nlog-level-file=info\n'
                    'archive-async=%s\nprocess-max=2\narchive-get-queue-max=256MiB\n\n'
                    '[bench]\npg1-path=%s\n'
                    % (r, variant, self.tls_port, self.cert, BUCKET, KEY, KEY, d, d, d,
                       'y' if 'async' in variant else 'n', pgdata))
        self.chown(d)
        return cfg

    # ------------------------------------------------------------- pgdata
    def fake_pgdata(self, path, ready):
        """A data directory as archive_command/restore_command see it."""
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(os.path.join(path, 'global'))
        os.makedirs(os.path.join(path, 'pg_wal', 'archive_status'))
        shutil.copy(os.path.join(self.FIX, 'global', 'pg_control'), os.path.join(path, 'global'))
        shutil.copy(os.path.join(self.FIX, 'PG_VERSION'), path)
        if ready:
            for s in self.segs:
                os.link(os.path.join(self.FIX, s), os.path.join(path, 'pg_wal', s))
                open(os.path.join(path, 'pg_wal', 'archive_status', s + '.ready'), 'w').close()
        self.chown(path)

    # -------------------------------------------------------------- push
    def push_cmd(self, v, r, seg, pgdata):
        p = 'pg_wal/' + seg
        pre = 'r%d/%s' % (r, v)
        if v.startswith('ferry'):
            la = [] if '-la' in v else ['--lookahead', '0']
            la += ['--compress-level', '3'] if v.endswith('-z3') else []
            la += ['--lookahead-jobs', '8'] if v.endswith('-j8') else []
            return [self.push_bin] + la + [p], self.ferry_env(pre, '-tls' in v)
        if v.startswith('pgbr'):
            return (['pgbackrest', '--config=' + self.pgbr_conf_cache[(v, r, 'push')], '--stanza=bench',
                     'archive-push', p], self.base_env())
        if v == 'barman':
            return (['barman-cloud-wal-archive', '--endpoint-url', self.ep, 's3://%s/%s' % (BUCKET, pre),
                     'bench', p], self.base_env())
        if v == 'aws':
            return ([AWS, '--endpoint-url', self.ep, 's3', 'cp', p, 's3://%s/%s/%s' % (BUCKET, pre, seg)],
                    self.base_env())
        raise ValueError(v)

    def get_cmd(self, v, r, seg, dest):
        src = 'r%d/%s' % (r, GET_FROM[v])
        if v.startswith('ferry'):
            pf = [] if '-pf' in v else ['--prefetch', '0']
            return [self.fetch_bin] + pf + [seg, dest], self.ferry_env(src, v.endswith('-tls'))
        if v.startswith('pgbr'):
            return (['pgbackrest', '--config=' + self.pgbr_conf_cache[(v, r, 'get')], '--stanza=bench',
                     'archive-get', seg, dest], self.base_env())
        if v == 'barman':
            return (['barman-cloud-wal-restore', '--endpoint-url', self.ep, 's3://%s/%s' % (BUCKET, src),
                     'bench', seg, dest], self.base_env())
        if v == 'aws':
            return ([AWS, '--endpoint-url', self.ep, 's3', 'cp', 's3://%s/%s/%s' % (BUCKET, src, seg), dest],
                    self.base_env())
        raise ValueError(v)

    def run_push(self, v, r):
        d = os.path.join(self.W, 'push-%s-r%d' % (v, r))
        self.fake_pgdata(d, ready=True)
        if v.startswith('pgbr'):
            cfg = self.pgbr_conf(v, r, 'push', d)
            self.pgbr_conf_cache[(v, r, 'push')] = cfg
            self.sh(['pgbackrest', '--config=' + cfg, '--stanza=bench', '--no-online', 'stanza-create'])
        st = os.path.join(d, 'pg_wal', 'archive_status')
        c0 = self.cpu_now()
        t0 = time.monotonic()
        for s in self.segs:
            cmd, env = self.push_cmd(v, r, s, d)
            dt, rc, err = self.timed(cmd, env, d)
            if rc == 0:  # PostgreSQL marks the segment done after a zero exit
                os.rename(os.path.join(st, s + '.ready'), os.path.join(st, s + '.done'))
            elif err:
                self.errors.setdefault(('push', v), []).append('%s: %s' % (s, err))
            self.calls.append(('push', v, r, s, dt, rc))
        self.rounds.setdefault(('push', v), []).append(time.monotonic() - t0)
        self.cpu_rounds.setdefault(('push', v), []).append(self.cpu_since(c0))
        self.quiesce([d], [self.pgbr_conf_cache.get((v, r, 'push'))])

    def run_get(self, v, r):
        d = os.path.join(self.W, 'get-%s-r%d' % (v, r))
        self.fake_pgdata(d, ready=False)
        if v.startswith('pgbr'):
            self.pgbr_conf_cache[(v, r, 'get')] = self.pgbr_conf(v, r, 'get', d)
        wal = os.path.join(d, 'pg_wal')
        dest = 'pg_wal/RECOVERYXLOG'  # as PostgreSQL names it during recovery
        c0 = self.cpu_now()
        t0 = time.monotonic()
        for s in self.segs:
            cmd, env = self.get_cmd(v, r, s, dest)
            dt, rc, err = self.timed(cmd, env, d)
            if rc == 0:  # PostgreSQL keeps the restored file under its own name
                os.rename(os.path.join(wal, 'RECOVERYXLOG'), os.path.join(wal, s))
            elif err:
                self.errors.setdefault(('get', v), []).append('%s: %s' % (s, err))
            self.calls.append(('get', v, r, s, dt, rc))
        self.rounds.setdefault(('get', v), []).append(time.monotonic() - t0)
        self.cpu_rounds.setdefault(('get', v), []).append(self.cpu_since(c0))
        self.quiesce([d], [self.pgbr_conf_cache.get((v, r, 'get'))])
        bad = 0
        for s in self.segs:  # untimed: every restored segment equals the original
            if subprocess.run(['cmp', '-s', os.path.join(self.FIX, s), os.path.join(wal, s)]).returncode:
                bad += 1
        self.bad[(v, r)] = bad
        shutil.rmtree(d, ignore_errors=True)

    # ---------------------------------------------------------- recovery
    def run_recovery(self, v, r):
        label, repo = RECOVERY[v]
        d = os.path.join(self.W, 'rec-%s-r%d' % (v, r))
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run(['cp', '-a', self.BASE, d], check=True)
        os.chmod(d, 0o700)
        sock = os.path.join(self.W, 'sock')
        os.makedirs(sock, exist_ok=True)
        self.chown(sock)
        words = [d]
        if v.startswith('ferry'):
            env = self.ferry_env('r%d/%s' % (r, repo), v.endswith('-tls'))
            rc = '%s%s %%f %%p' % (self.fetch_bin, '' if '-pf' in v else ' --prefetch 0')
        else:
            env = self.base_env()
            cfg = self.pgbr_conf(repo, r, 'rec', d)
            words.append(cfg)
            rc = 'pgbackrest --config=%s --stanza=bench archive-get %%f "%%p"' % cfg
        with open(os.path.join(d, 'postgresql.auto.conf'), 'a') as f:
            f.write("port = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\n"
                    "archive_mode = off\nhot_standby = off\nlog_timezone = 'UTC'\n"
                    "restore_command = '%s'\n" % (free_port(), sock, rc))
        open(os.path.join(d, 'recovery.signal'), 'w').close()
        self.chown(d)
        logf = os.path.join(d, 'recovery.log')
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(PGBIN, 'postgres'), '-D', d], env=env, user=self.user,
                             stdout=open(logf, 'w'), stderr=subprocess.STDOUT)
        done = False
        while p.poll() is None and time.monotonic() - t0 < 1800:
            with open(logf, errors='replace') as f:
                if 'database system is ready to accept connections' in f.read():
                    done = True
                    break
            time.sleep(0.01)
        dt = time.monotonic() - t0
        p.send_signal(signal.SIGQUIT)  # immediate shutdown
        p.wait()
        self.quiesce([d], words)
        with open(logf, errors='replace') as f:
            text = f.read()
        restored = re.findall(r'restored log file "([0-9A-F]{24})" from archive', text)
        ok = done and restored and restored[-1] == self.segs[-1]
        if not ok:
            self.errors.setdefault(('recovery', v), []).append(text[-1500:])
        self.recov.setdefault(v, []).append((dt, len(set(restored)), ok))
        shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------- sizes
    def stored(self):
        """Objects and bytes per round-1 repository, from s3rver's store on disk."""
        out = {}
        base = os.path.join(self.s3dir, BUCKET)
        for v in self.push_variants:
            n = b = 0
            top = os.path.join(base, 'r1', v)
            for dp, _, fs in os.walk(top):
                for f in fs:
                    if f.endswith('._S3rver_object') and re.match(r'^[0-9A-F]{24}', f):
                        n += 1
                        b += os.path.getsize(os.path.join(dp, f))
            out[v] = (n, b)
        return out

    # ------------------------------------------------------------ report
    def report(self):
        N = len(self.segs)
        lines = []
        P = lines.append
        segps = {}

        def table(phase, names):
            P('| %s | segs/s (median of rounds) | per round | median s/call | p90 s/call | failed |%s'
              % ('tool / mode', ' stored KiB/seg |' if phase == 'push' else ' verified |'))
            P('|---|---:|---|---:|---:|---:|---:|')
            sizes = self.sizes if phase == 'push' else {}
            for v in (self.push_variants if phase == 'push' else self.get_variants):
                rs = self.rounds.get((phase, v))
                if not rs:
                    continue
                ts = sorted(c[4] for c in self.calls if c[0] == phase and c[1] == v)
                fails = sum(1 for c in self.calls if c[0] == phase and c[1] == v and c[5] != 0)
                sp = statistics.median(N / x for x in rs)
                segps[(phase, v)] = sp
                p90 = ts[min(len(ts) - 1, int(0.9 * len(ts)))]
                if phase == 'push':
                    n, b = sizes.get(v, (0, 0))
                    extra = '%s |' % ('{:,.0f}'.format(b / n / 1024) if n else '?')
                else:
                    bad = sum(b for (bv, _), b in self.bad.items() if bv == v)
                    extra = '%s |' % ('all equal' if bad == 0 else '%d differ' % bad)
                P('| %s | %.2f | %s | %.3f | %.3f | %d/%d | %s' % (
                    names[v][0], sp, ' / '.join('%.1f' % (N / x) for x in rs),
                    statistics.median(ts), p90, fails, len(ts), extra))

        ncpu = os.cpu_count()
        cpuseg = {}  # (phase, variant) -> median (machine, s3rver) CPU seconds per segment

        def cpu_table(phase, names):
            P('CPU of the timed rounds, whole machine (every process: the tool, its helpers, '
              's3rver, the harness), per segment, medians of rounds:')
            P('')
            P('| tool / mode | CPU ms/seg | of which s3rver | the rest | machine busy | '
              'segs/s at this cost with %d CPUs all busy |' % ncpu)
            P('|---|---:|---:|---:|---:|---:|')
            for v in (self.push_variants if phase == 'push' else self.get_variants):
                cs, rs = self.cpu_rounds.get((phase, v)), self.rounds.get((phase, v))
                if not cs or not rs:
                    continue
                busy = statistics.median(c[0] / N for c in cs)
                srv = statistics.median(c[1] / N for c in cs)
                use = statistics.median(c[0] / (w * ncpu) for c, w in zip(cs, rs))
                cpuseg[(phase, v)] = (busy, srv)
                P('| %s | %.1f | %.1f | %.1f | %.0f%% | %.1f |' % (
                    names[v][0], busy * 1e3, srv * 1e3, (busy - srv) * 1e3, use * 100,
                    ncpu / busy if busy > 0 else 0))
            P('')

        P('### Archive (archive_command): %d segments x %d rounds, one process per segment' % (N, self.a.rounds))
        P('')
        table('push', PUSH)
        P('')
        cpu_table('push', PUSH)
        P('### Restore (restore_command): %d segments x %d rounds, one process per segment' % (N, self.a.rounds))
        P('')
        table('get', GET)
        P('')
        cpu_table('get', GET)

        def ratio_table(phase, names):
            fs = [v for v in names if names[v][1] == 'ferry' and (phase, v) in segps]
            ps = [v for v in names if names[v][1] == 'peer' and (phase, v) in segps]
            if not fs or not ps:
                return
            P('| ferry \\ peer | %s |' % ' | '.join(names[p][0] for p in ps))
            P('|---|%s' % ('---:|' * len(ps)))
            for f in fs:
                P('| %s | %s |' % (names[f][0], ' | '.join(
                    '%.2fx' % (segps[(phase, f)] / segps[(phase, p)]) for p in ps)))
            P('')

        P('### Ratios (ferry segs/s / peer segs/s; > 1: ferry faster)')
        P('')
        P('Archive:')
        P('')
        ratio_table('push', PUSH)
        P('Restore:')
        P('')
        ratio_table('get', GET)

        P('### Goals of issue 3')
        P('')
        goals = [('push', 'ferry-la-tls', 'pgbr-zst', 2.5, 'archive, look-ahead vs pgBackRest sync zst'),
                 ('push', 'ferry-la-tls', 'pgbr-async', 3.0, 'archive, look-ahead vs pgBackRest async'),
                 ('get', 'ferry-pf-tls', 'pgbr-async', 3.0, 'restore, prefetch vs pgBackRest async')]
        for ph, f, p, want, what in goals:
            for ff in (f, f.replace('-tls', '')):
                if (ph, ff) in segps and (ph, p) in segps:
                    x = segps[(ph, ff)] / segps[(ph, p)]
                    P('- %s (ferry %s): %.2fx, goal >= %.1fx: %s' % (
                        what, 'https' if ff.endswith('-tls') else 'http', x, want,
                        'met' if x >= want else 'NOT met'))
                    if (ph, ff) in cpuseg:
                        need = want * segps[(ph, p)]
                        budget = ncpu / need
                        used, srv = cpuseg[(ph, ff)]
                        P('  - the goal needs %.1f segs/s here: at most %.1f CPU ms per segment for '
                          'the whole machine with all %d CPUs busy; ferry\'s rounds used %.1f. Less '
                          'the harness\'s %.1f and s3rver\'s %.1f, that leaves ferry (every process '
                          'of it) at most %.1f ms per segment; it used %.1f' % (
                              need, budget * 1e3, ncpu, used * 1e3, self.harness[1] * 1e3, srv * 1e3,
                              (budget - self.harness[1] - srv) * 1e3, (used - self.harness[1] - srv) * 1e3))
                        if self.floor_cpu:
                            fl = self.floor_cpu[0 if ph == 'push' else 1]
                            left = budget - self.harness[1] - srv - fl
                            P('  - ferry\'s per-byte work alone (bench/wal/floor.c: %s, one thread, no '
                              'process, no network) costs %.1f ms per segment: %s' % (
                                  FLOOR_WORK[ph], fl * 1e3, 'more than the goal leaves' if left < 0
                                  else '%.1f ms left for starting the call, TLS, HTTP and the '
                                  'look-ahead or prefetcher' % (left * 1e3)))
        P('')
        if self.recov:
            P('### Whole PostgreSQL 15 recovery: base backup + %d segments replayed via restore_command' % N)
            P('')
            P('Time from starting postgres (recovery.signal, hot_standby=off) to "ready to accept '
              'connections" after promotion; the replay itself is the same for every row.')
            P('')
            P('| restore_command | seconds (median) | per round | segments restored | segs/s | reached the end |')
            P('|---|---:|---|---:|---:|---|')
            med = {}
            for v, rs in self.recov.items():
                m = statistics.median(x[0] for x in rs)
                med[v] = m
                P('| %s | %.2f | %s | %d | %.2f | %s |' % (
                    RECOVERY[v][0], m, ' / '.join('%.2f' % x[0] for x in rs), rs[0][1], rs[0][1] / m,
                    'yes' if all(x[2] for x in rs) else 'NO'))
            P('')
            for f in ('ferry-pf-tls', 'ferry-pf', 'ferry-sync'):
                for p in ('pgbr-zst', 'pgbr-async'):
                    if f in med and p in med:
                        P('- recovery, %s vs %s: %.2fx (pgBackRest time / ferry time; > 1: ferry faster)'
                          % (RECOVERY[f][0], RECOVERY[p][0], med[p] / med[f]))
            P('')
        if self.errors:
            P('### Errors (first per variant)')
            P('')
            for (ph, v), es in self.errors.items():
                P('- %s %s: %d, first: `%s`' % (ph, v, len(es), es[0].splitlines()[-1][:300] if es[0] else ''))
            P('')
        return '\n'.join(lines)

    # -------------------------------------------------------------- main
    def main(self):
        a = self.a
        for b in (self.push_bin, self.fetch_bin):
            if not os.access(b, os.X_OK):
                sys.exit('bench: %s is missing: meson setup %s --buildtype=release && ninja -C %s'
                         % (b, a.build, a.build))
        for t in ('pgbackrest', 'barman-cloud-wal-archive', AWS, os.path.join(PGBIN, 'postgres'), 'node'):
            if not shutil.which(t):
                sys.exit('bench: %s is missing: apt-get install postgresql-15 pgbackrest '
                         'barman-cli-cloud awscli nodejs npm' % t)
        os.makedirs(self.S, exist_ok=True)
        os.makedirs(os.path.join(self.S, 'home'), exist_ok=True)
        self.chown(os.path.join(self.S, 'home'))
        if self.user:
            os.chmod(self.S, 0o755)
        if a.regen_wal or not self.fixture_ok():
            self.make_fixture()
        self.segs = self.segments()
        shutil.rmtree(self.W, ignore_errors=True)
        os.makedirs(self.W)
        os.makedirs(self.OUT, exist_ok=True)
        self.chown(self.W)
        only = set(a.only.split(',')) if a.only else None
        self.push_variants = [v for v in PUSH if not only or v in only]
        self.get_variants = [v for v in GET if not only or v in only]
        rec_variants = [] if a.no_recovery else [v for v in RECOVERY if not only or v in only]
        self.pgbr_conf_cache, self.bad, self.recov = {}, {}, {}
        self.load0 = os.getloadavg()[0]
        self.start_s3()
        try:
            log('s3rver %s and %s; %d segments from %s; ferry from %s'
                % (self.ep, self.tls_ep, len(self.segs), self.FIX, a.build))
            self.harness = self.harness_call()
            self.floor_cpu = self.floor()
            for r in range(1, a.rounds + 1):
                vs = self.push_variants[r - 1:] + self.push_variants[:r - 1]  # rotate per round
                for v in vs:
                    if v in SLOW and r > a.slow_rounds:
                        continue
                    log('[push r%d] %s' % (r, v))
                    self.run_push(v, r)
            for r in range(1, a.rounds + 1):
                vs = self.get_variants[r - 1:] + self.get_variants[:r - 1]
                for v in vs:
                    if GET_FROM[v] not in self.push_variants or (v in SLOW and r > a.slow_rounds):
                        continue
                    log('[get r%d] %s' % (r, v))
                    self.run_get(v, r)
            for r in range(1, a.rounds + 1):
                vs = rec_variants[r - 1:] + rec_variants[:r - 1]
                for v in vs:
                    if RECOVERY[v][1] not in self.push_variants:
                        continue
                    log('[recovery r%d] %s' % (r, v))
                    self.run_recovery(v, r)
            self.sizes = self.stored()
        finally:
            self.stop_s3()
        with open(os.path.join(self.OUT, 'calls.tsv'), 'w') as f:
            f.write('phase\tvariant\tround\tsegment\tseconds\trc\n')
            for c in self.calls:
                f.write('%s\t%s\t%d\t%s\t%.6f\t%d\n' % c)
        ver = lambda cmd: subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                                         ).stdout.decode(errors='replace').strip().splitlines()[0]
        head = ['## WAL benchmark (%s, %d segments, %d rounds (%d of barman and aws), %d CPUs)' % (
            time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), len(self.segs), a.rounds,
            min(a.rounds, a.slow_rounds), os.cpu_count()),
            '',
            '%s (%s); %s; %s; %s; PostgreSQL %s; s3rver 3.7.1 on http and https (one process).' % (
                ver([self.push_bin, '--version']), a.build, ver(['pgbackrest', 'version']),
                ver(['barman-cloud-wal-archive', '--version']), ver([AWS, '--version']).split()[0],
                ver([os.path.join(PGBIN, 'postgres'), '--version']).split()[2]),
            'Segments: %s .. %s. segs/s = segments / wall time of a whole sequential round. '
            'Load average at the start %.2f, at the end %.2f. The harness alone (a call of '
            '/bin/true made as every call is made) takes %.1f ms of wall time and %.1f ms of the '
            'machine\'s CPU.' % (self.segs[0], self.segs[-1], self.load0, os.getloadavg()[0],
                                   self.harness[0] * 1e3, self.harness[1] * 1e3),
            '']
        if self.floor_cpu:
            head[-1:-1] = ['ferry\'s per-byte work alone (bench/wal/floor.c, one thread, no process, no '
                           'network): %.1f CPU ms per segment to push (%s), %.1f to fetch (%s).' % (
                               self.floor_cpu[0] * 1e3, FLOOR_WORK['push'], self.floor_cpu[1] * 1e3,
                               FLOOR_WORK['get'])]
        rep = '\n'.join(head) + '\n' + self.report()
        with open(os.path.join(self.OUT, 'report.md'), 'w') as f:
            f.write(rep + '\n')
        print(rep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build', help='build directory under the repository root')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--slow-rounds', type=int, default=1, help='rounds of barman and aws s3 cp (~1 s per call)')
    ap.add_argument('--nseg', type=int, default=32)
    ap.add_argument('--scratch', default='/tmp/ferry-wal-bench')
    ap.add_argument('--only', help='comma-separated variants (e.g. ferry-la,pgbr-zst)')
    ap.add_argument('--no-recovery', action='store_true', help='skip the whole-recovery timings')
    ap.add_argument('--regen-wal', action='store_true', help='make a new WAL fixture')
    Bench(ap.parse_args()).main()


if __name__ == '__main__':
    main()
