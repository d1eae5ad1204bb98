"""Writes dev_qa.jsonl and eval_qa.jsonl for the real-documents corpus (the questions live here, in one table,
so the split is reproducible): within each document's questions, and within the no-answer questions, every
other question goes to the development half, the rest to the held-out half.

    python sample_kb/real_docs/make_qa.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
NO = "The documents do not say."

# (source, language, question, reference answer, keys): keys are the facts a correct answer holds; a list
# inside keys gives alternatives.
ANSWERABLE = [
    ("debian_releases.csv", "en", "Which codename did Debian 3.0 go by?", "Woody.", ["Woody"]),
    ("debian_releases.csv", "en", "On what date did Debian Squeeze come out?", "2011-02-06.", ["2011-02-06"]),
    (
        "debian_releases.csv",
        "en",
        "When did ordinary security support end for Debian 10?",
        "2022-09-10.",
        ["2022-09-10"],
    ),
    ("debian_releases.csv", "en", "What version number does the Bookworm release have?", "12.", ["12"]),
    ("debian_releases.csv", "en", "Until when does extended LTS cover Bullseye?", "2031-06-30.", ["2031-06-30"]),
    (
        "debian_releases.csv",
        "en",
        "When was the very first listed Debian release, Buzz, published?",
        "1996-06-17.",
        ["1996-06-17"],
    ),
    ("debian_releases.csv", "en", "What is the codename planned for Debian 15?", "Duke.", ["Duke"]),
    ("debian_releases.csv", "en", "When did the long-term support for Stretch stop?", "2022-06-30.", ["2022-06-30"]),
    ("yq_README.rst", "en", "What command installs yq through pip?", "pip3 install yq", ["pip3 install yq"]),
    ("yq_README.rst", "en", "Which other program has to be installed before yq can be used?", "jq.", ["jq"]),
    (
        "yq_README.rst",
        "en",
        "Which yq flag turns jq's JSON output back into YAML?",
        "--yaml-output (-y).",
        [["--yaml-output", "-y"]],
    ),
    ("yq_README.rst", "en", "What exit status does yq give when the YAML cannot be parsed?", "1.", ["1"]),
    ("yq_README.rst", "en", "What is the XML executable shipped in the yq package called?", "xq.", ["xq"]),
    ("yq_README.rst", "en", "Which Python library converts XML into JSON for xq?", "xmltodict.", ["xmltodict"]),
    ("yq_README.rst", "en", "Which command does the package provide for TOML files?", "tomlq.", ["tomlq"]),
    (
        "yq_README.rst",
        "en",
        "With which version does this package's release series on PyPI start?",
        "2.0.0.",
        ["2.0.0"],
    ),
    ("yq_README.rst", "en", "Under what license is yq released?", "Apache License 2.0.", ["Apache"]),
    (
        "yq_README.rst",
        "en",
        "With -Y, how many entries would a jq filter counting the Instances array report?",
        "4 instead of 2.",
        ["4"],
    ),
    (
        "zstd_README.md",
        "en",
        "What compression ratio did zstd 1.5.1 at level -1 achieve in the benchmark?",
        "2.887.",
        ["2.887"],
    ),
    ("zstd_README.md", "en", "How fast did lz4 1.9.3 decompress in the benchmark?", "4500 MB/s.", ["4500"]),
    (
        "zstd_README.md",
        "en",
        "On which processor were the first benchmarks run?",
        "Core i7-9700K at 4.9 GHz.",
        ["i7-9700K"],
    ),
    ("zstd_README.md", "en", "Which RFC specifies the Zstandard format?", "RFC 8878.", ["8878"]),
    (
        "zstd_README.md",
        "en",
        "What is the file that zstd's training mode produces called?",
        "A dictionary.",
        ["dictionary"],
    ),
    ("zstd_README.md", "en", "Which zstd option trains a dictionary from sample files?", "--train.", ["--train"]),
    ("zstd_README.md", "en", "Which build system do the zstd maintainers officially support?", "make.", ["make"]),
    (
        "zstd_README.md",
        "en",
        "About how many records are in the github-users sample set?",
        "Roughly 10K.",
        [["10K", "10,000", "10000"]],
    ),
    (
        "zstd_README.md",
        "en",
        "Under which two licenses is the zstd library provided?",
        "BSD and GPLv2.",
        ["BSD", "GPLv2"],
    ),
    (
        "systemd_ENVIRONMENT.md",
        "en",
        "Which environment variable stops systemctl from talking to PID 1?",
        "$SYSTEMD_OFFLINE=1.",
        ["SYSTEMD_OFFLINE"],
    ),
    (
        "systemd_ENVIRONMENT.md",
        "en",
        "Which variable points systemd at another file instead of /etc/fstab?",
        "$SYSTEMD_FSTAB.",
        ["SYSTEMD_FSTAB"],
    ),
    (
        "systemd_ENVIRONMENT.md",
        "en",
        "If SYSTEMD_BUS_TIMEOUT has no unit, what unit is assumed?",
        "Seconds.",
        ["second"],
    ),
    (
        "systemd_ENVIRONMENT.md",
        "en",
        "What happens to the output of systemd-analyze security with SYSTEMD_EMOJI=0?",
        "It prints ASCII alternatives instead of emoji.",
        ["ASCII"],
    ),
    (
        "systemd_ENVIRONMENT.md",
        "en",
        "Which variable switches off the hash tables' memory pool so malloc() is used?",
        "$SYSTEMD_MEMPOOL=0.",
        ["SYSTEMD_MEMPOOL"],
    ),
    (
        "systemd_ENVIRONMENT.md",
        "en",
        "SYSTEMD_PROC_CMDLINE replaces the contents of which file?",
        "/proc/cmdline.",
        ["/proc/cmdline"],
    ),
    (
        "systemd_ENVIRONMENT.md",
        "en",
        "Which variable keeps seccomp filters from being enforced?",
        "$SYSTEMD_SECCOMP=0.",
        ["SYSTEMD_SECCOMP"],
    ),
    ("man-db_NEWS.md", "en", "On what date was man-db 2.11.2 released?", "8 January 2023.", ["8 January 2023"]),
    (
        "man-db_NEWS.md",
        "en",
        "Where did man-db move its Git repository in version 2.11.1?",
        "https://gitlab.com/man-db/man-db",
        ["gitlab"],
    ),
    ("man-db_NEWS.md", "en", "Which section did man-db 2.11.1 add to the default section list?", "3type.", ["3type"]),
    (
        "man-db_NEWS.md",
        "en",
        "Which configuration directive now takes precedence over MINCATWIDTH and MAXCATWIDTH?",
        "CATWIDTH.",
        ["CATWIDTH"],
    ),
    (
        "man-db_NEWS.md",
        "en",
        "What Automake version does regenerating man-db's build system need as of 2.10.2?",
        "Automake 1.14 or newer.",
        ["1.14"],
    ),
    (
        "dpkg_triggers_spec.txt",
        "en",
        "How many kinds of triggers does the dpkg trigger design foresee?",
        "Three.",
        [["three", "3"]],
    ),
    (
        "dpkg_triggers_spec.txt",
        "en",
        "Which program can any script run to activate an explicit trigger?",
        "dpkg-trigger.",
        ["dpkg-trigger"],
    ),
    (
        "dpkg_triggers_spec.txt",
        "en",
        "Which two new package status values do triggers introduce?",
        "triggers-pending and triggers-awaited.",
        ["triggers-pending", "triggers-awaited"],
    ),
    (
        "dpkg_triggers_spec.txt",
        "en",
        "What kind of characters may a trigger name consist of?",
        "Printing 7-bit ASCII characters, no whitespace.",
        ["7-bit"],
    ),
    ("procps_bugs.md", "en", "On which site is the procps issue tracker hosted?", "GitLab.", ["GitLab"]),
    (
        "procps_bugs.md",
        "en",
        "Which mailing list takes procps bug reports?",
        "procps@freelists.org.",
        ["procps@freelists.org"],
    ),
    (
        "procps_bugs.md",
        "en",
        "With which compiler flags should procps be rebuilt to get a useful stack trace?",
        "CFLAGS=-ggdb -O.",
        ["-ggdb"],
    ),
    (
        "procps_bugs.md",
        "en",
        "Which variable should kernel-dependent procps patches test at run time?",
        "linux_version_code.",
        ["linux_version_code"],
    ),
    (
        "procps_bugs.md",
        "en",
        "Which ps option gives output that is often useful in a bug report?",
        "ps --info.",
        ["--info"],
    ),
    (
        "base-passwd_users-and-groups.html",
        "en",
        "What login shell does the sync user have?",
        "/bin/sync.",
        ["/bin/sync"],
    ),
    ("base-passwd_users-and-groups.html", "en", "Which group owns the mailboxes in /var/mail?", "mail.", ["mail"]),
    ("base-passwd_users-and-groups.html", "en", "What user id did the operator account have?", "37.", ["37"]),
    ("base-passwd_users-and-groups.html", "en", "Which uid and gid did the gnats user and group have?", "41.", ["41"]),
    ("base-passwd_users-and-groups.html", "en", "As which user does squid run?", "proxy.", ["proxy"]),
    (
        "base-passwd_users-and-groups.html",
        "en",
        "Members of which group may read many of the logs in /var/log?",
        "adm.",
        ["adm"],
    ),
    (
        "base-passwd_users-and-groups.html",
        "en",
        "With NFS root-squashing, as which user is client root access done?",
        "nobody.",
        ["nobody"],
    ),
    (
        "libffi_The-Basics.html",
        "en",
        "Which libffi function prepares a call interface object?",
        "ffi_prep_cif.",
        ["ffi_prep_cif"],
    ),
    ("libffi_The-Basics.html", "en", "What does cif stand for in ffi_cif?", "Call InterFace.", ["Call InterFace"]),
    (
        "libffi_The-Basics.html",
        "en",
        "Which ABI value is normally the one to pass to ffi_prep_cif?",
        "FFI_DEFAULT_ABI.",
        ["FFI_DEFAULT_ABI"],
    ),
    (
        "libffi_Primitive-Types.html",
        "en",
        "Which type descriptor stands for a signed 16-bit integer?",
        "ffi_type_sint16.",
        ["ffi_type_sint16"],
    ),
    ("libffi_Primitive-Types.html", "en", "Where may ffi_type_void be used?", "Only for return values.", ["return"]),
    ("free_manpage_de.txt", "de", "Aus welcher Datei bezieht free seine Angaben?", "/proc/meminfo.", ["/proc/meminfo"]),
    (
        "free_manpage_de.txt",
        "de",
        "Mit welcher Option gibt free die Werte in Mebibyte aus?",
        "-m bzw. --mebi.",
        [["--mebi", "-m"]],
    ),
    (
        "free_manpage_de.txt",
        "de",
        "In welcher Einheit zeigt free den Speicher ohne Optionen an?",
        "Kibibyte.",
        ["Kibibyte"],
    ),
    (
        "free_manpage_de.txt",
        "de",
        "Welche Option fügt eine Zeile mit den Summen der Spalten hinzu?",
        "-t bzw. --total.",
        [["--total", "-t"]],
    ),
    ("free_manpage_de.txt", "de", "Seit welcher Kernel-Version gibt es MemAvailable?", "Seit Kernel 3.14.", ["3.14"]),
    (
        "free_manpage_de.txt",
        "de",
        "Welche Option muss zusammen mit -c angegeben werden?",
        "-s (--seconds).",
        [["-s", "--seconds"]],
    ),
    (
        "chage_manpage_ja.txt",
        "ja",
        "chage でパスワード変更間隔の最短日数を決めるオプションは何ですか?",
        "-m オプション。",
        ["-m"],
    ),
    (
        "chage_manpage_ja.txt",
        "ja",
        "パスワードを最後に変更した日を設定するには chage のどのオプションを使いますか?",
        "-d オプション。",
        ["-d"],
    ),
    (
        "chage_manpage_ja.txt",
        "ja",
        "chage を使うために必要なパスワードファイルは何ですか?",
        "shadow パスワードファイル。",
        ["shadow"],
    ),
    ("chage_manpage_ja.txt", "ja", "-I オプションに 0 を指定するとどうなりますか?", "この機能が無効になる。", ["無効"]),
    ("chage_manpage_ja.txt", "ja", "chage で日付を指定するときの書式は何ですか?", "YYYY-MM-DD。", ["YYYY-MM-DD"]),
    ("chage_manpage_ja.txt", "ja", "chage の著者は誰ですか?", "Julianne Frances Haugh。", ["Haugh"]),
]

UNANSWERABLE = [
    ("en", "What is the codename of Debian 16?"),
    ("en", "Which Python version does yq need at minimum?"),
    ("en", "What compression ratio does zstd reach at level 19 in the benchmark table?"),
    ("en", "How fast does brotli decompress at its highest level?"),
    ("en", "Which variable sets the maximum size of a systemd journal file?"),
    ("en", "When was man-db 3.0 released?"),
    ("en", "How many triggers may a single package declare at most?"),
    ("en", "Which e-mail address receives yq bug reports?"),
    ("en", "Which libffi function releases a cif when it is no longer needed?"),
    ("en", "Which group lets users run Docker containers?"),
    ("en", "How often does procps publish a new release?"),
    ("en", "How much memory does the free command itself use?"),
    ("en", "Which Ubuntu release is codenamed Noble Numbat?"),
    ("en", "Who maintains the Debian package of zstd?"),
    ("en", "What TCP port does the DNS stub of systemd-resolved listen on?"),
    ("en", "How much faster is zstd than xz at decompression?"),
    ("en", "Which dpkg version first supported file triggers?"),
    ("en", "What is the price of commercial support for libffi?"),
    ("de", "Mit welcher Option gibt free seine Ausgabe als JSON aus?"),
    ("de", "Wie viele Prozesse zeigt free standardmäßig an?"),
    ("de", "Wer hat die deutsche Übersetzung der Handbuchseite von free angefertigt?"),
    ("ja", "chage で警告メールの送信先を設定するオプションは何ですか?"),
    ("ja", "パスワードの最大の長さは何文字ですか?"),
    ("ja", "chage のバージョン番号はいくつですか?"),
]


def main() -> None:
    dev, held = [], []
    by_source: dict[str, int] = {}
    for source, language, question, answer, keys in ANSWERABLE:
        n = by_source[source] = by_source.get(source, -1) + 1
        item = {
            "question": question,
            "answer": answer,
            "source": source,
            "language": language,
            "answerable": True,
            "keys": keys,
        }
        (dev if n % 2 == 0 else held).append(item)
    for n, (language, question) in enumerate(UNANSWERABLE):
        item = {
            "question": question,
            "answer": NO,
            "source": None,
            "language": language,
            "answerable": False,
            "keys": [],
        }
        (dev if n % 2 == 0 else held).append(item)
    for name, items, prefix in (("dev_qa.jsonl", dev, "rd"), ("eval_qa.jsonl", held, "re")):
        with open(HERE / name, "w", encoding="utf-8") as out:
            for i, item in enumerate(items, 1):
                out.write(json.dumps({"id": f"{prefix}{i:03d}", **item}, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)} questions ({sum(not i['answerable'] for i in items)} without an answer)")


if __name__ == "__main__":
    main()
