# preload_programs.sh: real programs from Debian's packages, run with and without the
# shim for every engine; their output and exit status must be the same.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"

# Inputs, made once (outside the comparison) and shared by both runs.
IN=$WORK/inputs
mkdir -p "$IN"
$PY - "$IN" <<'PYEOF'
import random, sys
d = sys.argv[1]
r = random.Random(42)
words = ["".join(r.choice("abcdefghij") for _ in range(r.randint(1, 12))) for _ in range(5000)]
with open(d + "/lines", "w") as f:          # for sort
    for i in range(400000):
        f.write("%s %d %s\n" % (r.choice(words), r.randint(0, 10**9), r.choice(words)))
with open(d + "/data", "wb") as f:          # for xz: compressible, not trivially
    f.write(" ".join(r.choice(words) for _ in range(700000)).encode())
with open(d + "/gen.c", "w") as f:          # for gcc: a few thousand lines
    f.write("#include <stdio.h>\n#include <string.h>\n")
    for i in range(600):
        f.write("static int f%d(int x) {\n  int a[%d];\n  for (int i = 0; i < %d; i++) a[i] = x * %d + i;\n"
                "  int s = 0;\n  for (int i = 0; i < %d; i++) s ^= a[i] << (i %% 7);\n  return s + %d;\n}\n"
                % (i, i % 50 + 1, i % 50 + 1, i, i % 50 + 1, i))
    f.write("int main(void) {\n  long t = 0;\n")
    for i in range(600):
        f.write("  t += f%d(%d);\n" % (i, i))
    f.write('  printf("%ld\\n", t);\n  return 0;\n}\n')
PYEOF

py_script='
import hashlib, json, re, collections
d = {}
for i in range(60000):
    d["k%d" % i] = [i, str(i) * (i % 7), {"n": i % 13}]
s = json.dumps(d, sort_keys=True)
back = json.loads(s)
words = re.findall(r"k[0-9]+", s)
c = collections.Counter(w[-1] for w in words)
big = sorted((str(x) for x in range(50000)), key=lambda x: x[::-1])
print(len(s), len(back), sorted(c.items())[:5], big[:3])
print(hashlib.sha256(s.encode() + "".join(big).encode()).hexdigest())'

sqlite_script='
sqlite3 db.sqlite <<SQL
create table t(id integer primary key, name text, v integer);
with recursive c(x) as (select 1 union all select x + 1 from c where x < 50000)
  insert into t(name, v) select printf("name-%05d", x * 7919 % 50000), x * x % 1000003 from c;
create index tv on t(v);
create table u as select id % 100 as g, count(*) as n, sum(v) as s from t group by id % 100;
select count(*), sum(v), min(name), max(name) from t;
select g, n, s from u order by s desc limit 5;
select t.name, u.s from t join u on t.id % 100 = u.g where t.v < 50 order by t.name limit 5;
delete from t where id % 3 = 0;
vacuum;
select count(*), sum(length(name)) from t;
SQL'

gcc_script='
gcc -O2 -c "$IN/gen.c" -o gen.o && sha256sum gen.o | cut -c1-64 &&
gcc gen.o -o gen && ./gen'

git_script='
export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@example.org GIT_COMMITTER_NAME=c GIT_COMMITTER_EMAIL=c@example.org
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z" GIT_CONFIG_NOSYSTEM=1 HOME=$PWD
git init -q -b main repo && cd repo
for i in $(seq 1 12); do
    seq $((i * 100)) $((i * 100 + 400)) > file$((i % 5)).txt
    echo "commit $i" >> log.txt
    git add -A && git commit -q -m "change $i"
done
git checkout -q -b side HEAD~4
echo side > side.txt && git add side.txt && git commit -q -m side
git checkout -q main && git merge -q --no-edit side
git gc -q && git fsck --no-progress && git count-objects
git log --stat --format="%H %s" | head -n 80
git archive --format=tar HEAD | sha256sum'

xz_script='
xz -T2 -6 -c "$IN/data" > data.xz && sha256sum < data.xz && xz -T2 -d -c data.xz | sha256sum'

sort_script='
sort --parallel=2 -S 8M -k2,2n -k1,1 "$IN/lines" | sha256sum
sort --parallel=2 -S 8M -u "$IN/lines" | wc -l'

make_script='
for i in 1 2 3 4 5 6 7 8; do
    printf "out%d: \n\tseq 1 %d | awk '"'"'{ s += \$\$1 * \$\$1 } END { print \"out%d\", s }'"'"' > \$@\n" $i $((i * 20000)) $i
done > Makefile
printf "all: out1 out2 out3 out4 out5 out6 out7 out8\n\tcat \$^\n" >> Makefile
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -j2 --no-print-directory all'

fork_script='
'"$PY"' - <<PYEOF
import os, subprocess, multiprocessing
def square(x):
    return x * x
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, str(sum(len(str(i)) for i in range(100000))).encode())
    os._exit(0)
os.close(w)
child = os.read(r, 100).decode()
os.waitpid(pid, 0)
out = subprocess.run(["sh", "-c", "echo from-subprocess; seq 1 1000 | wc -l"], capture_output=True, text=True).stdout
with multiprocessing.Pool(2) as pool:
    squares = sum(pool.map(square, range(20000)))
print(child, out.split(), squares)
PYEOF'

export IN PY
for engine in $FASTMEM_ENGINES; do
    compare "python3" "$engine" "$PY -c '$py_script'"
    compare "python3, PYTHONMALLOC=malloc" "$engine" "PYTHONMALLOC=malloc $PY -c '$py_script'"
    compare "sqlite3" "$engine" "$sqlite_script"
    compare "gcc compiling and linking" "$engine" "$gcc_script"
    compare "git building up a repository" "$engine" "$git_script"
    compare "xz -T2" "$engine" "$xz_script"
    compare "sort --parallel=2" "$engine" "$sort_script"
    compare "make -j2" "$engine" "$make_script"
    compare "python3 fork, subprocess, multiprocessing" "$engine" "$fork_script"

    # The report a user asks for with MEMSTATS=1.
    MEMSTATS=1 MEMSIZE=256M shim "$engine" $PY -c 'print(sum(range(10**6)))' >"$WORK/out" 2>"$WORK/err"
    if [ "$(cat "$WORK/out")" = 499999500000 ] &&
        grep -qE "^libfastmem: statistics at exit of pid [0-9]+ \(python3\), engine $engine$" "$WORK/err" &&
        grep -qE "^libfastmem:   cap +256 MiB " "$WORK/err" &&
        grep -qE "^libfastmem:   calls_malloc +[1-9][0-9]* " "$WORK/err" &&
        grep -qE "^libfastmem:   failed_cap +0 " "$WORK/err" &&
        { [ "$engine" != fm ] || grep -qE "^libfastmem:   fm buckets +[1-9][0-9]* of 2304 size classes hold free blocks" "$WORK/err"; }; then
        pass "MEMSTATS=1 report: engine, cap, calls [$engine]"
    else
        fail "MEMSTATS=1 report [$engine]:"
        cat "$WORK/err"
    fi
done
finish
