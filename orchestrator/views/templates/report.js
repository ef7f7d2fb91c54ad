(function(){
var t=document.querySelector('table.runs');if(!t)return;
var body=t.tBodies[0],q=document.getElementById('run-filter'),
 st=document.getElementById('run-status');
function key(td){var v=td.getAttribute('data-v');return v===null?td.textContent.trim():v;}
function num(v){return v!==''&&isFinite(v)?parseFloat(v):null;}
Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
 th.addEventListener('click',function(){
  var down=th.getAttribute('aria-sort')==='ascending';
  Array.prototype.forEach.call(t.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',down?'descending':'ascending');
  var rows=Array.prototype.filter.call(body.rows,function(r){return r.className==='run';});
  var vals=rows.map(function(r){return key(r.cells[i]);});
  var numeric=vals.every(function(v){return v===''||num(v)!==null;});
  var order=rows.map(function(r,j){return j;});
  order.sort(function(a,b){var x=vals[a],y=vals[b];
   if(x===''||y===''){return x===y?a-b:(x===''?1:-1);}
   var c=numeric?num(x)-num(y):x.localeCompare(y,undefined,{numeric:true});
   return (down?-c:c)||a-b;});
  order.forEach(function(j){var more=rows[j].nextElementSibling;body.appendChild(rows[j]);
   if(more&&more.className==='more')body.appendChild(more);});
 });});
body.addEventListener('click',function(e){var b=e.target.closest('button.open');if(!b)return;
 var more=b.closest('tr').nextElementSibling;more.hidden=!more.hidden;
 b.textContent=more.hidden?'\u25B8':'\u25BE';});
function filter(){var text=q.value.toLowerCase(),want=st.value;
 Array.prototype.forEach.call(body.rows,function(r){if(r.className!=='run')return;
  var more=r.nextElementSibling,all=r.textContent+' '+(more?more.textContent:'');
  var ok=(!want||r.getAttribute('data-status')===want)&&
   (!text||all.toLowerCase().indexOf(text)>=0);
  r.style.display=ok?'':'none';if(more)more.style.display=ok?'':'none';});}
q.addEventListener('input',filter);st.addEventListener('change',filter);
})();
(function(){
var el=document.getElementById('compare-data');if(!el)return;
var D=JSON.parse(el.textContent),svg=document.getElementById('compare-plot'),
 sel=document.getElementById('compare-key'),leg=document.getElementById('compare-legend');
var picks=Array.prototype.slice.call(document.querySelectorAll('input.pick'));
var C=['#1f77b4','#ff7f0e','#2ca02c','#d62728','#9467bd','#8c564b','#e377c2','#7f7f7f',
 '#bcbd22','#17becf'];
function esc(t){return String(t).replace(/[&<>"]/g,function(c){
 return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function ticks(lo,hi,n){var s=(hi-lo)/n,m=Math.pow(10,Math.floor(Math.log10(s))),f=s/m;
 s=(f<1.5?1:f<3?2:f<7?5:10)*m;var out=[];
 for(var v=Math.ceil(lo/s)*s;v<=hi+s*1e-9;v+=s)out.push(v);return out;}
function fmt(v){var a=Math.abs(v);
 return a>=1e4||(a<1e-3&&a>0)?v.toExponential(1):String(+v.toPrecision(4));}
function draw(){
 var key=sel.value,W=1100,H=380,L=70,R=20,T=15,B=40,xs=[],ys=[];
 var ids=picks.filter(function(p){return p.checked;}).map(function(p){return p.value;})
  .filter(function(id){return D.runs[id]&&D.runs[id][key];});
 svg.setAttribute('data-runs',ids.join(','));
 if(!ids.length){leg.textContent='';svg.innerHTML='<text x="550" y="190" '+
  'text-anchor="middle" fill="#888">tick runs in the table to compare them</text>';return;}
 ids.forEach(function(id){D.runs[id][key].forEach(function(p){xs.push(p[0]);ys.push(p[1]);});});
 var x0=Math.min.apply(null,xs),x1=Math.max.apply(null,xs);
 var y0=Math.min.apply(null,ys),y1=Math.max.apply(null,ys),log=y0>0&&y1/y0>10;
 var f=log?Math.log10:function(v){return v;},a=f(y0),b=f(y1);
 if(a===b){a-=Math.abs(a)*0.05||1;b+=Math.abs(b)*0.05||1;}
 var pad=(b-a)*0.05;a-=pad;b+=pad;if(x0===x1){x0-=1;x1+=1;}
 function X(v){return L+(v-x0)/(x1-x0)*(W-L-R);}
 function Y(v){return T+(b-f(v))/(b-a)*(H-T-B);}
 var g=[];
 ticks(x0,x1,8).forEach(function(t){g.push('<line x1="'+X(t)+'" x2="'+X(t)+'" y1="'+T+
  '" y2="'+(H-B)+'" stroke="#eee"/><text x="'+X(t)+'" y="'+(H-B+16)+
  '" text-anchor="middle" font-size="11">'+fmt(t)+'</text>');});
 ticks(a,b,6).forEach(function(t){var v=log?Math.pow(10,t):t,y=T+(b-t)/(b-a)*(H-T-B);
  g.push('<line x1="'+L+'" x2="'+(W-R)+'" y1="'+y+'" y2="'+y+'" stroke="#eee"/><text x="'+
  (L-6)+'" y="'+(y+4)+'" text-anchor="end" font-size="11">'+fmt(v)+'</text>');});
 ids.forEach(function(id,i){var pts=D.runs[id][key].map(function(p){
  return X(p[0]).toFixed(1)+','+Y(p[1]).toFixed(1);}).join(' ');
  g.push('<polyline fill="none" stroke-width="1.6" stroke="'+C[i%10]+'" points="'+pts+
  '" data-run="'+esc(id)+'"><title>'+esc(id)+'</title></polyline>');});
 g.push('<text x="'+((L+W-R)/2)+'" y="'+(H-6)+'" text-anchor="middle" font-size="12">step'+
  '</text><text x="14" y="'+((T+H-B)/2)+'" font-size="12" text-anchor="middle" '+
  'transform="rotate(-90 14 '+((T+H-B)/2)+')">'+esc(key)+(log?' (log)':'')+'</text>');
 svg.innerHTML=g.join('');
 leg.innerHTML=ids.map(function(id,i){return '<span><i style="background:'+C[i%10]+
  '"></i>'+esc(id)+'</span>';}).join('');}
picks.forEach(function(p){p.checked=D.first.indexOf(p.value)>=0;
 p.addEventListener('change',draw);});
sel.addEventListener('change',draw);draw();
})();
