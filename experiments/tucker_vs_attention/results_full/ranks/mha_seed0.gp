set terminal pngcairo size 1000,650 enhanced font 'sans,11'
set output "mha_seed0.png"
set linetype 1 lc rgb '#1f77b4'
set linetype 2 lc rgb '#d62728'
set linetype 3 lc rgb '#2ca02c'
set linetype 4 lc rgb '#ff7f0e'
set linetype 5 lc rgb '#9467bd'
set linetype 6 lc rgb '#8c564b'
set linetype 7 lc rgb '#e377c2'
set linetype 8 lc rgb '#17becf'
set linetype 9 lc rgb '#7f7f7f'
set linetype 10 lc rgb '#bcbd22'
set linetype cycle 10
set multiplot layout 1,2 title 'Ranks of the attention tensors (d 192, 6 heads)'
set xlabel 'layer' offset 0,0.5
set autoscale xfix
set xtics 1
set grid xtics ytics lc rgb '#dddddd'
set logscale y 2
set key below horizontal maxrows 2 font ',9'
set offsets graph 0.03, graph 0.03, graph 0.08, graph 0.08
set ylabel 'effective rank (entropy)'
plot \
  'mha_seed0.dat' index 0 using 1:2 with linespoints lw 2 title 'T_{qk} query', \
  'mha_seed0.dat' index 1 using 1:2 with linespoints lw 2 title 'T_{qk} key', \
  'mha_seed0.dat' index 2 using 1:2 with linespoints lw 2 title 'T_{qk} head', \
  'mha_seed0.dat' index 3 using 1:2 with linespoints lw 2 title 'T_{ov} value', \
  'mha_seed0.dat' index 4 using 1:2 with linespoints lw 2 title 'T_{ov} output', \
  'mha_seed0.dat' index 5 using 1:2 with linespoints lw 2 title 'T_{ov} head'
set ylabel 'rank for 99% energy'
plot \
  'mha_seed0.dat' index 0 using 1:3 with linespoints lw 2 title 'T_{qk} query', \
  'mha_seed0.dat' index 1 using 1:3 with linespoints lw 2 title 'T_{qk} key', \
  'mha_seed0.dat' index 2 using 1:3 with linespoints lw 2 title 'T_{qk} head', \
  'mha_seed0.dat' index 3 using 1:3 with linespoints lw 2 title 'T_{ov} value', \
  'mha_seed0.dat' index 4 using 1:3 with linespoints lw 2 title 'T_{ov} output', \
  'mha_seed0.dat' index 5 using 1:3 with linespoints lw 2 title 'T_{ov} head'
unset multiplot
