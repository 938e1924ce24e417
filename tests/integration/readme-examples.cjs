// readme-examples.cjs README OUTDIR: writes every code block of README
// marked to run -- the line "<!-- example -->" right before its opening
// fence -- to OUTDIR/NN.EXT (sh, mjs for js, py for python) and prints
// one line per block: "FILE LANGUAGE LINE" (LINE: the README's line of
// the fence).  Exit 1 when a marker is not followed by a fence, a fence
// is not closed, or a language is not one of sh, js, python.
'use strict';
const fs = require('fs');
const path = require('path');

const [readme, outdir] = process.argv.slice(2);
const ext = { sh: 'sh', js: 'mjs', python: 'py' };
const lines = fs.readFileSync(readme, 'utf8').split('\n');
let n = 0;
const fail = (msg) => {
    console.error(`${readme}: ${msg}`);
    process.exit(1);
};
for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '<!-- example -->') continue;
    const open = /^```(\S+)\s*$/.exec(lines[i + 1] || '');
    if (!open) fail(`line ${i + 1}: the marker is not followed by a fence with a language`);
    if (!ext[open[1]]) fail(`line ${i + 2}: language ${open[1]} is not one of ${Object.keys(ext).join(', ')}`);
    let j = i + 2;
    while (j < lines.length && lines[j] !== '```') j++;
    if (j === lines.length) fail(`line ${i + 2}: the fence is not closed`);
    n++;
    const file = path.join(outdir, `${String(n).padStart(2, '0')}.${ext[open[1]]}`);
    fs.writeFileSync(file, lines.slice(i + 2, j).join('\n') + '\n');
    console.log(`${file} ${open[1]} ${i + 2}`);
    i = j;
}
