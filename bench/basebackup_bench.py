#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Base backup and restore benchmark of issue 4, not a test.

In ONE run, against ONE s3rver process (bench/wal/s3server.js, http and
https, as bench/wal_bench.py), with ONE pgbench database in PostgreSQL 15:

  backup  (1) ferry-basebackup -c fast                       (https)
          (2) the runbook: pg_basebackup -Ft -z -c fast -D DIR, then
              aws s3 cp --recursive DIR                      (https)
          (3) pgbackrest backup --type=full, process-max=2, zst (https)
  restore (a) ferry-restore -D DIR, then postgres until it accepts connections
          (b) pgbackrest restore (process-max=2), then postgres likewise

    bench/basebackup_bench.py [--build build] [--scale 100] [--rounds 3]
                              [--scratch /tmp/ferry-bb-bench]

Every backup is taken --rounds times (the order of the three rotated per
round), then, with the source stopped, each restore --rounds times (order
alternated; each restores the newest backup); the report gives medians.

Run as root: PostgreSQL, pgBackRest and every tool run as the postgres user.
archive_command pushes every WAL segment with ferry-wal-push AND pgbackrest
archive-push (each backup needs its WAL in its own repository), so the
archiving cost during each backup is the same for every tool. Prints a
markdown report (also SCRATCH/results/report.md).
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wal_bench  # noqa: E402  (s3rver, postgres-user helpers)
from wal_bench import AWS, BUCKET, KEY, PGBIN, free_port, log  # noqa: E402

GOAL_TPUT, GOAL_RTO, GOAL_RSS_KIB = 2.0, 0.5, 64 * 1024


class BBBench(wal_bench.Bench):
    def __init__(self, a):
        super().__init__(a)
        build = os.path.join(wal_bench.ROOT, a.build)
        self.bb_bin = os.path.join(build, 'basebackup', 'ferry-basebackup')
        self.restore_bin = os.path.join(build, 'restore', 'ferry-restore')
        self.data = os.path.join(self.W, 'data')
        self.sock = os.path.join(self.W, 'sock')
        self.pgport = free_port()
        self.res = {}  # name -> [dict(s=seconds, rss=KiB, ...) per round]
        self.stored_size = {}  # name -> (objects, bytes) of the round-1 backup

    # ------------------------------------------------------------ helpers
    def ferry_opts(self):
        return ['--repo', 's3://%s/ferry' % BUCKET, '--s3-endpoint', self.tls_ep, '--s3-ca-file', self.cert,
                '--s3-no-imds']

    def server_env(self):
        # archive_command's ferry-wal-push finds its repository here (and both tools' secrets)
        return self.ferry_env('ferry', True)

    def write_pgbr_conf(self):
        d = os.path.join(self.W, 'pgbr')
        for sub in ('log', 'lock', 'spool'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        self.pgbr_cfg = os.path.join(d, 'pgbackrest.conf')
        with open(self.pgbr_cfg, 'w') as f:
            f.write('[global]\nrepo1-type=s3\nrepo1-path=/pgbr\nrepo1-s3-endpoint=localhost\n'
                    'repo1-storage-port=%d\nrepo1-storage-ca-file=%s\nrepo1-s3-uri-style=path\n'
                    'repo1-s3-bucket=%s\nrepo1-s3-region=us-east-1\nrepo1-s3-key=%s\n'
                    'repo1-s3-key-secret=%s\nrepo1-retention-full=100\ncompress-type=zst\n'
                    'process-max=2\nstart-fast=y\nlog-path=%s/log\nlock-path=%s/lock\n'
                    'spool-path=%s/spool\nlog-level-console=warn\nlog-level-file=info\n\n'
                    '[bench]\npg1-path=%s\npg1-socket-path=%s\npg1-port=%d\n'
                    % (self.tls_port, self.cert, BUCKET, KEY, KEY, d, d, d, self.data, self.sock,
                       self.pgport))
        self.chown(d)

    def pgbr(self, *args):
        return ['pgbackrest', '--config=' + self.pgbr_cfg, '--stanza=bench'] + list(args)

    def psql(self, sql, port=None):
        p = self.sh([os.path.join(PGBIN, 'psql'), '-h', self.sock, '-p', str(port or self.pgport), '-U',
                     'postgres', '-qAtc', sql, 'postgres'])
        return p.stdout.decode().strip()

    def timed_rss(self, name, cmd, env=None):
        """Run cmd as postgres under /usr/bin/time; (seconds, peak RSS KiB). CPU seconds -> self.cpu;
        the whole machine's busy CPU seconds meanwhile -> self.mcpu, s3rver's -> self.scpu."""
        tf = os.path.join(self.OUT, 'time-%s.txt' % name)
        lf = os.path.join(self.OUT, 'out-%s.txt' % name)
        with open(lf, 'w') as out:
            c0 = self.cpu_now()
            t0 = time.monotonic()
            p = subprocess.run(['/usr/bin/time', '-o', tf, '-f', '%M %U %S'] + cmd, env=env or self.base_env(),
                               user=self.user, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            dt = time.monotonic() - t0
            self.mcpu, self.scpu = self.cpu_since(c0)
        if p.returncode != 0:
            with open(lf, errors='replace') as f:
                sys.exit('bench: %s failed (%d): %s\n%s' % (name, p.returncode, ' '.join(cmd), f.read()[-3000:]))
        with open(tf) as f:
            rss, us, sy = f.read().strip().splitlines()[-1].split()
        rss, self.cpu = int(rss), float(us) + float(sy)
        log('  %s: %.1f s, CPU %.1f s, peak RSS %.1f MiB' % (name, dt, self.cpu, int(rss) / 1024))
        return dt, rss

    def stored(self, prefix):
        n = b = 0
        for dp, _, fs in os.walk(os.path.join(self.s3dir, BUCKET, prefix)):
            for f in fs:
                if f.endswith('._S3rver_object'):
                    n += 1
                    b += os.path.getsize(os.path.join(dp, f))
        return n, b

    def wait_archived(self):
        """Switch WAL and wait until the archiver has caught up (never timed)."""
        seg = self.psql('select pg_walfile_name(pg_switch_wal())')
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1200:
            last = self.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver")
            if last >= seg:
                return
            time.sleep(0.5)
        sys.exit('bench: the archiver did not reach %s' % seg)

    # ------------------------------------------------------------- source
    def make_source(self):
        os.makedirs(self.sock, exist_ok=True)
        self.chown(self.sock)
        self.pg('initdb', '-D', self.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C')
        ac = '%s %%p && pgbackrest --config=%s --stanza=bench archive-push %%p' % (self.push_bin, self.pgbr_cfg)
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write("listen_addresses = ''\nport = %d\nunix_socket_directories = '%s'\n"
                    "wal_level = replica\narchive_mode = on\narchive_command = '%s'\n"
                    "max_wal_size = 4GB\ncheckpoint_timeout = 30min\nshared_buffers = 256MB\n"
                    "max_wal_senders = 4\n" % (self.pgport, self.sock, ac))
        with open(os.path.join(self.data, 'pg_hba.conf'), 'a') as f:
            f.write('local replication all trust\n')
        self.pg('pg_ctl', '-D', self.data, '-l', os.path.join(self.W, 'source.log'), '-w', 'start',
                env=self.server_env())
        self.running = True
        self.sh(self.pgbr('stanza-create'))
        log('pgbench -i -s %d' % self.a.scale)
        t0 = time.monotonic()
        self.pg('pgbench', '-h', self.sock, '-p', str(self.pgport), '-U', 'postgres', '-i', '-s',
                str(self.a.scale), '-q', 'postgres')
        log('  %.0f s; waiting for the archiver' % (time.monotonic() - t0))
        self.psql('checkpoint')
        self.wait_archived()
        self.dbbytes = int(self.psql('select sum(pg_database_size(oid)) from pg_database'))
        log('  cluster: %.0f MiB in databases' % (self.dbbytes / 1048576))

    # ------------------------------------------------------------- backups
    def add(self, name, **kw):
        self.res.setdefault(name, []).append(kw)

    def backup_ferry(self, r):
        dt, rss = self.timed_rss('ferry-basebackup-r%d' % r, [
            self.bb_bin] + self.ferry_opts() + ['-h', self.sock, '-p', str(self.pgport), '-U', 'postgres',
                                                '-c', 'fast', '--json'])
        self.add('ferry', s=dt, rss=rss, cpu=self.cpu, mcpu=self.mcpu, scpu=self.scpu)
        self.stored_size.setdefault('ferry', self.stored('ferry/pg/backups'))

    def backup_runbook(self, r):
        d = os.path.join(self.W, 'runbook')
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.chown(d)
        t1, rss1 = self.timed_rss('pg_basebackup-r%d' % r, [
            os.path.join(PGBIN, 'pg_basebackup'), '-h', self.sock, '-p', str(self.pgport), '-U', 'postgres',
            '-Ft', '-z', '-c', 'fast', '-D', os.path.join(d, 'base')])
        cpu1, mcpu1, scpu1 = self.cpu, self.mcpu, self.scpu
        t2, rss2 = self.timed_rss('aws-s3-cp-r%d' % r, [
            AWS, '--endpoint-url', self.tls_ep, '--ca-bundle', self.cert, 's3', 'cp', '--recursive',
            '--only-show-errors', os.path.join(d, 'base'), 's3://%s/runbook/r%d/' % (BUCKET, r)])
        self.add('runbook', s=t1 + t2, rss=max(rss1, rss2), parts=(t1, t2, rss1, rss2), cpu=cpu1 + self.cpu,
                 mcpu=mcpu1 + self.mcpu, scpu=scpu1 + self.scpu)
        self.stored_size.setdefault('runbook', self.stored('runbook'))

    def backup_pgbr(self, r):
        dt, rss = self.timed_rss('pgbackrest-backup-r%d' % r, self.pgbr('--type=full', 'backup'))
        self.add('pgbr', s=dt, rss=rss, cpu=self.cpu, mcpu=self.mcpu, scpu=self.scpu)
        self.stored_size.setdefault('pgbr', self.stored('pgbr/backup'))

    # ------------------------------------------------------------ restores
    def start_until_ready(self, name, d):
        with open(os.path.join(d, 'postgresql.auto.conf'), 'a') as f:
            f.write("\n# benchmark\nport = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\n"
                    "archive_mode = off\nhot_standby = off\n" % (self.rport, self.sock))
        logf = os.path.join(self.OUT, 'postgres-%s.log' % name)
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(PGBIN, 'postgres'), '-D', d], env=self.server_env(), user=self.user,
                             stdout=open(logf, 'w'), stderr=subprocess.STDOUT)
        ok = False
        while p.poll() is None and time.monotonic() - t0 < 3600:
            with open(logf, errors='replace') as f:
                if 'database system is ready to accept connections' in f.read():
                    ok = True
                    break
            time.sleep(0.01)
        dt = time.monotonic() - t0
        rows = None
        if ok:  # untimed check: the data is there
            rows = int(self.psql('select count(*) from pgbench_accounts', port=self.rport))
        p.send_signal(signal.SIGINT)  # fast shutdown
        p.wait()
        if not ok:
            with open(logf, errors='replace') as f:
                sys.exit('bench: %s: postgres did not become ready\n%s' % (name, f.read()[-3000:]))
        log('  %s: postgres ready after %.1f s; pgbench_accounts %d rows' % (name, dt, rows))
        return dt, rows

    def restore_ferry(self, r):
        d = os.path.join(self.W, 'restore-ferry')
        t1, rss = self.timed_rss('ferry-restore-r%d' % r, [self.restore_bin, '-D', d] + self.ferry_opts(),
                                 env=self.server_env())
        cpu = self.cpu
        t2, rows = self.start_until_ready('ferry-r%d' % r, d)
        self.add('r-ferry', s=t1 + t2, parts=(t1, t2), rss=rss, rows=rows, cpu=cpu)
        self.remove_restored(d)

    def restore_pgbr(self, r):
        d = os.path.join(self.W, 'restore-pgbr')
        os.makedirs(d, mode=0o700)
        self.chown(d)
        t1, rss = self.timed_rss('pgbackrest-restore-r%d' % r, self.pgbr('--pg1-path=' + d, 'restore'))
        cpu = self.cpu
        t2, rows = self.start_until_ready('pgbr-r%d' % r, d)
        self.add('r-pgbr', s=t1 + t2, parts=(t1, t2), rss=rss, rows=rows, cpu=cpu)
        self.remove_restored(d)

    def remove_restored(self, d):
        shutil.rmtree(d, ignore_errors=True)
        self.settle()

    @staticmethod
    def settle():
        """Untimed: write back what the last step left dirty and give the disk a few seconds, so
        no tool pays for the one before it (deletes are discarded: mounted with discard)."""
        os.sync()
        time.sleep(5)

    # -------------------------------------------------------------- report
    def report(self):
        mib, med = 1048576.0, statistics.median
        r = {}
        for k, xs in self.res.items():  # medians of the rounds; peak RSS: the highest
            r[k] = dict(s=med(x['s'] for x in xs), rss=max(x['rss'] for x in xs), cpu=med(x['cpu'] for x in xs),
                        each=' / '.join('%.1f' % x['s'] for x in xs), stored=self.stored_size.get(k))
            if 'parts' in xs[0]:
                r[k]['parts'] = tuple((max if i >= 2 else med)(x['parts'][i] for x in xs)
                                      for i in range(len(xs[0]['parts'])))
            if 'rows' in xs[0]:
                r[k]['rows'] = min(x['rows'] for x in xs)
            if 'mcpu' in xs[0]:
                r[k]['mcpu'] = med(x['mcpu'] for x in xs)
                r[k]['scpu'] = med(x['scpu'] for x in xs)
        L = []
        P = L.append
        tput = {k: self.dbbytes / mib / r[k]['s'] for k in ('ferry', 'runbook', 'pgbr')}
        P('### Backup: pgbench -s %d, %.0f MiB in databases (sum of pg_database_size), median of %d rounds'
          % (self.a.scale, self.dbbytes / mib, self.a.rounds))
        P('')
        P('| tool | wall s (median) | per round | MiB/s (database bytes / wall s) | ferry / tool | '
          'CPU s (user+sys, median) | machine CPU s (of which s3rver) | stored MiB (objects) | peak RSS MiB |')
        P('|---|---:|---|---:|---:|---:|---:|---:|---:|')
        rb = r['runbook']['parts']
        rows = [('ferry', 'ferry-basebackup -c fast (server zstd-1, 8 MiB parts, 3 parallel, CRC32C manifest; https)',
                 '%.1f' % (r['ferry']['rss'] / 1024)),
                ('runbook', 'pg_basebackup -Ft -z -c fast (%.1f s) + aws s3 cp --recursive (%.1f s); https'
                 % (rb[0], rb[1]), '%.1f / %.1f' % (rb[2] / 1024, rb[3] / 1024)),
                ('pgbr', 'pgbackrest backup --type=full, process-max=2, zst-3, start-fast (https)',
                 '%.1f' % (r['pgbr']['rss'] / 1024))]
        for k, label, rss in rows:
            n, b = r[k]['stored']
            P('| %s | %.1f | %s | %.1f | %.2fx | %.1f | %.1f (%.1f) | %.0f (%d) | %s |' % (
                label, r[k]['s'], r[k]['each'], tput[k], tput['ferry'] / tput[k], r[k]['cpu'], r[k]['mcpu'],
                r[k]['scpu'], b / mib, n, rss))
        P('')
        P('Machine CPU s: busy time of all CPUs (/proc/stat) during the backup command(s): the tool, '
          'PostgreSQL\'s walsender, s3rver (in brackets, from /proc/PID/stat) and anything else.')
        P('')
        P('### Restore until PostgreSQL accepts connections (recovery to the end of the archive), '
          'median of %d rounds' % self.a.rounds)
        P('')
        P('| tool | total s (median) | per round | restore s | postgres start + recovery s | ferry / tool time | '
          'restore CPU s (user+sys) | peak RSS MiB | pgbench_accounts rows |')
        P('|---|---:|---|---:|---:|---:|---:|---:|---:|')
        for k, label in (('r-ferry', 'ferry-restore -D, then postgres'),
                         ('r-pgbr', 'pgbackrest restore (process-max=2), then postgres')):
            x = r[k]
            P('| %s | %.1f | %s | %.1f | %.1f | %.2fx | %.1f | %.1f | %d |' % (
                label, x['s'], x['each'], x['parts'][0], x['parts'][1], r['r-ferry']['s'] / x['s'], x['cpu'],
                x['rss'] / 1024,
                x['rows']))
        P('')
        P('### Goals of issue 4')
        P('')
        g1 = tput['ferry'] / tput['pgbr']
        g2 = r['r-ferry']['s'] / r['r-pgbr']['s']
        rss = max(r['ferry']['rss'], r['r-ferry']['rss'])
        P('- backup throughput vs pgBackRest: %.2fx, goal >= %.1fx: %s' % (g1, GOAL_TPUT, 'met' if g1 >= GOAL_TPUT
                                                                            else 'NOT met'))
        need = r['pgbr']['s'] / GOAL_TPUT
        P('  - the goal needs a backup in %.1f s: at most %.1f CPU s for the whole machine with all %d CPUs '
          'busy; ferry\'s backups used %.1f (s3rver %.1f of it)' % (
              need, need * os.cpu_count(), os.cpu_count(), r['ferry']['mcpu'], r['ferry']['scpu']))
        P('- restore time vs pgBackRest: %.2fx, goal <= %.1fx: %s' % (g2, GOAL_RTO, 'met' if g2 <= GOAL_RTO
                                                                      else 'NOT met'))
        P('- peak RSS: ferry-basebackup %.1f MiB, ferry-restore %.1f MiB, goal <= 64 MiB: %s' % (
            r['ferry']['rss'] / 1024, r['r-ferry']['rss'] / 1024, 'met' if rss <= GOAL_RSS_KIB else 'NOT met'))
        P('- (backup throughput vs the runbook: %.2fx)' % (tput['ferry'] / tput['runbook']))
        return '\n'.join(L)

    def main(self):
        a = self.a
        for b in (self.push_bin, self.bb_bin, self.restore_bin):
            if not os.access(b, os.X_OK):
                sys.exit('bench: %s is missing: meson setup %s --buildtype=release && ninja -C %s'
                         % (b, a.build, a.build))
        for t in ('pgbackrest', AWS, os.path.join(PGBIN, 'postgres'), 'node', '/usr/bin/time'):
            if not shutil.which(t):
                sys.exit('bench: %s is missing: apt-get install postgresql-15 pgbackrest awscli nodejs npm time'
                         % t)
        os.makedirs(self.S, exist_ok=True)
        if self.user:
            os.chmod(self.S, 0o755)
        os.makedirs(os.path.join(self.S, 'home'), exist_ok=True)
        self.chown(os.path.join(self.S, 'home'))
        shutil.rmtree(self.W, ignore_errors=True)
        shutil.rmtree(self.OUT, ignore_errors=True)
        os.makedirs(self.W)
        os.makedirs(self.OUT)
        self.chown(self.W)
        self.chown(self.OUT)
        self.running = False
        self.rport = free_port()
        self.write_pgbr_conf()
        self.load = [os.getloadavg()]
        self.start_s3()
        try:
            self.make_source()
            self.load.append(os.getloadavg())
            bs = [('ferry', self.backup_ferry), ('runbook', self.backup_runbook), ('pgbr', self.backup_pgbr)]
            for r in range(1, a.rounds + 1):
                for name, fn in bs[(r - 1) % 3:] + bs[:(r - 1) % 3]:  # rotate per round
                    log('[backup r%d] %s' % (r, name))
                    self.settle()
                    fn(r)
            self.wait_archived()  # every backup's WAL in both archives, then stop the source
            self.pg('pg_ctl', '-D', self.data, '-m', 'fast', '-w', 'stop')
            self.running = False
            self.load.append(os.getloadavg())
            # Untimed warm-up: on a VM, the first write into guest memory never touched
            # before is several times slower than later ones; without this the first
            # restore pays for it. Write and delete as much as one restore writes.
            warm = os.path.join(self.W, 'warm-up')
            log('[restore] warm-up: %d MiB written to the page cache and deleted' % (self.dbbytes >> 20))
            subprocess.run(['dd', 'if=/dev/zero', 'of=' + warm, 'bs=1M', 'count=%d' % (self.dbbytes >> 20)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            os.unlink(warm)
            self.settle()
            rs = [('ferry', self.restore_ferry), ('pgbr', self.restore_pgbr)]
            for r in range(1, a.rounds + 1):
                for name, fn in (rs if r % 2 else rs[::-1]):
                    log('[restore r%d] %s' % (r, name))
                    fn(r)
            self.load.append(os.getloadavg())
        finally:
            if self.running:
                self.pg('pg_ctl', '-D', self.data, '-m', 'immediate', 'stop', check=False)
            self.stop_s3()
        ver = lambda cmd: subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                                         ).stdout.decode(errors='replace').strip().splitlines()[0]
        head = ['## Base backup benchmark (%s, pgbench -s %d, %d rounds, %d CPUs)' % (
            time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), a.scale, a.rounds, os.cpu_count()),
            '',
            '%s (%s); %s; %s; PostgreSQL %s; s3rver 3.7.1 (one process, every tool over https).' % (
                ver([self.bb_bin, '--version']), a.build, ver(['pgbackrest', 'version']),
                ver([AWS, '--version']).split()[0], ver([os.path.join(PGBIN, 'postgres'), '--version']).split()[2]),
            'Load average (1/5/15 min): start %s; before the backups %s; before the restores %s; end %s.' % tuple(
                '/'.join('%.2f' % x for x in l) for l in self.load),
            '']
        rep = '\n'.join(head) + '\n' + self.report()
        with open(os.path.join(self.OUT, 'report.md'), 'w') as f:
            f.write(rep + '\n')
        print(rep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build', help='build directory under the repository root')
    ap.add_argument('--scale', type=int, default=100, help='pgbench scale (100: about 1.5 GiB)')
    ap.add_argument('--rounds', type=int, default=3, help='backups and restores of each tool')
    ap.add_argument('--scratch', default='/tmp/ferry-bb-bench')
    BBBench(ap.parse_args()).main()


if __name__ == '__main__':
    main()
