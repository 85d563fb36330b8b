(function(){
const vids=Array.from(document.querySelectorAll('video'));
const seen=vids.map(()=>({loaded:false,maxReadyState:0,maxTime:0,loops:0,lit:null}));
function lit(v){try{if(!v.videoWidth||v.readyState<2)return null;const c=document.createElement('canvas');
c.width=v.videoWidth;c.height=v.videoHeight;const g=c.getContext('2d');g.drawImage(v,0,0);
const d=g.getImageData(0,0,c.width,c.height).data;let n=0;
for(let i=0;i<d.length;i+=4){if(Math.max(d[i],d[i+1],d[i+2])>40)n++;}return n/(d.length/4);}catch(e){return null;}}
function played(v){let t=0;for(let i=0;i<v.played.length;i++)t+=v.played.end(i)-v.played.start(i);return t;}
function report(){
 const s=vids.map((v,i)=>{const o=seen[i];o.maxReadyState=Math.max(o.maxReadyState,v.readyState);
  o.maxTime=Math.max(o.maxTime,v.currentTime);const l=lit(v);if(l!==null)o.lit=l;
  const q=v.getVideoPlaybackQuality?v.getVideoPlaybackQuality():null;
  return {run:v.dataset.run,sample:v.dataset.sample,readyState:v.readyState,currentTime:v.currentTime,
  duration:isFinite(v.duration)?v.duration:null,videoWidth:v.videoWidth,videoHeight:v.videoHeight,paused:v.paused,
  error:v.error?v.error.code:null,loaded:o.loaded,maxReadyState:o.maxReadyState,maxTime:o.maxTime,played:played(v),
  framesDecoded:q?q.totalVideoFrames:null,loops:o.loops,lit:o.lit};});
 document.getElementById('video-status').textContent=JSON.stringify(s,null,1);
 const ok=s.filter(x=>x.loaded&&x.played>0&&x.error===null).length;
 document.getElementById('playback-summary').textContent=vids.length?(ok+'/'+vids.length+' videos playing'):'no videos';
}
vids.forEach((v,i)=>{v.addEventListener('loadeddata',()=>{seen[i].loaded=true;report();});
 v.addEventListener('seeked',()=>{seen[i].loops++;});
 ['timeupdate','playing','error'].forEach(ev=>v.addEventListener(ev,report));
 if(v.readyState>=2)seen[i].loaded=true;const p=v.play();if(p&&p.catch)p.catch(()=>{});});
report();setInterval(report,250);
})();
