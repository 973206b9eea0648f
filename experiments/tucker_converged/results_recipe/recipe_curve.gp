set terminal pngcairo size 1000,650 enhanced font 'sans,11'
set output "recipe_curve.png"
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
set xlabel "train.epochs"
set ylabel "test top-1 (%)"
set logscale x
set format x '%.0s%c'
set grid xtics mxtics ytics lc rgb '#dddddd'
set key outside right top box opaque
set xrange [7.692307692:208]
set label 1 'mean over seeds; bars: min to max' at graph 0, graph -0.13 font ',9'
set bmargin 5
set offsets 0, 0, graph 0.05, graph 0.05
plot \
  "recipe_curve.dat" index 0 using 1:2:3:4 with yerrorlines lw 2 pt 7 ps 1.3 title "192", \
  "recipe_curve.dat" index 1 using 1:2:3:4 with yerrorlines lw 2 pt 5 ps 1.3 title "384", \
  "recipe_curve.dat" index 2 using 1:2 with steps dt 2 lw 1.5 lc rgb 'black' title 'Pareto front'
